"""OpenAI's fine-tuning flow, as a user's script runs it with the ``openai`` client, on real vLLM and the real
trainer: upload a vision JSONL of generated images (the rule: name the complementary colour, which the tiny
base cannot guess), create a job with a validation file, follow its events, retrieve the succeeded job, and
chat with the fine-tuned model; its checkpoints are served and deleted like models; a second job is
cancelled; bad files are refused naming every bad line; another workspace sees none of it.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.integration.conftest import GatewayProcess, keys_cli
from tests.support import colour_task
from tests.support.export_model import greedy, image_inputs
from tests.support.platform_task import Platform, ask_colour

COMPLEMENT = {"red": "green", "green": "red", "blue": "yellow", "yellow": "blue", "black": "white",
              "white": "black"}  # fmt: skip


def uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def user_turn(path: Path) -> dict[str, Any]:
    return {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": uri(path)}},
        {"type": "text", "text": colour_task.PROMPT},
    ]}  # fmt: skip


def jsonl(root: Path, per_colour: int, seed: int) -> bytes:
    lines = []
    for path, colour in colour_task.write_images(root, per_colour, seed):
        # No system message: on the tiny base a new system prompt needs far more steps to learn this rule
        # (measured: 1 of 6 right after 60 steps with one, 6 of 6 without); conversations with system
        # messages are trained alike (tests/unit/test_finetune_chat.py).
        messages = [
            user_turn(path),
            {"role": "assistant", "content": colour_task.target_for(COMPLEMENT[colour])},
        ]
        lines.append(json.dumps({"messages": messages}))
    return "\n".join(lines).encode()


def wait_for(client: openai.OpenAI, job_id: str, done: tuple[str, ...], timeout_s: float = 300) -> Any:
    deadline = time.monotonic() + timeout_s
    job = client.fine_tuning.jobs.retrieve(job_id)
    while job.status not in done and time.monotonic() < deadline:
        time.sleep(1)
        job = client.fine_tuning.jobs.retrieve(job_id)
    return job


COLOUR_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "colour",
        "schema": {
            "type": "object",
            "properties": {"color": {"type": "string", "enum": colour_task.TASK_COLOURS}},
            "required": ["color"],
            "additionalProperties": False,
        },
    },
}


def answers(client: openai.OpenAI, model: str, images: list[tuple[Path, str]]) -> list[str]:
    """The colour ``model`` names for each image (JSON held to the colours by ``response_format``)."""
    named = []
    for path, _colour in images:
        answer = client.chat.completions.create(
            model=model, messages=[user_turn(path)],  # type: ignore[list-item]
            max_tokens=24, temperature=0, response_format=COLOUR_SCHEMA,  # type: ignore[arg-type]
        )  # fmt: skip
        assert answer.model == model
        named.append(json.loads(answer.choices[0].message.content or "{}")["color"])
    return named


def right(named: list[str], images: list[tuple[Path, str]]) -> int:
    return sum(n == COMPLEMENT[colour] for n, (_path, colour) in zip(named, images, strict=True))


@pytest.fixture(scope="module")
def tuned(gateway: GatewayProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The user's script: files.create twice, fine_tuning.jobs.create, poll until it ends."""
    key = keys_cli(gateway, "create", "--user", "ft-user", "--workspace", "ft-ws")
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=120)
    root = tmp_path_factory.mktemp("ft")
    train = client.files.create(file=("train.jsonl", jsonl(root / "train", 4, seed=1)), purpose="fine-tune")
    valid = client.files.create(file=("valid.jsonl", jsonl(root / "valid", 1, seed=2)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="tiny", training_file=train.id, validation_file=valid.id, suffix="colours", seed=7,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 20, "batch_size": 8}}},
    )  # fmt: skip
    assert job.id.startswith("ftjob-") and job.status in ("queued", "running"), job
    job = wait_for(client, job.id, ("succeeded", "failed", "cancelled"))
    assert job.status == "succeeded", f"{job}\n{gateway.log_tail()}"
    return {"key": key, "client": client, "job": job, "train": train, "valid": valid, "root": root}


def test_files_are_listed_retrieved_and_read_back(tuned: dict[str, Any]) -> None:
    client, train = tuned["client"], tuned["train"]
    assert train.id.startswith("file-") and train.purpose == "fine-tune" and train.filename == "train.jsonl"
    listed = client.files.list(purpose="fine-tune")
    assert {f.id for f in listed.data} >= {train.id, tuned["valid"].id}
    assert client.files.retrieve(train.id).bytes == train.bytes
    content = client.files.content(train.id).read()
    assert len(content) == train.bytes and content.count(b"\n") == 23


def test_succeeded_job_reports_model_tokens_events_and_validation_loss(tuned: dict[str, Any]) -> None:
    client, job = tuned["client"], tuned["job"]
    assert job.fine_tuned_model == f"ft:tiny:colours:{job.id.removeprefix('ftjob-')}"
    assert job.trained_tokens and job.trained_tokens > 0 and job.finished_at and job.error is None
    assert job.hyperparameters.n_epochs == 20 and job.seed == 7
    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    assert all(e.object == "fine_tuning.job.event" and e.id.startswith("ftevent-") for e in events)
    messages = [e.message for e in events]  # newest first
    assert messages[0] == "The job has successfully completed"
    assert messages[-1].startswith("Validating training file")
    metrics = [e.data for e in events if e.type == "metrics"]
    assert metrics[0]["step"] == 60 and metrics[0]["train_loss"] < metrics[-1]["train_loss"]
    assert sum("valid_loss" in m for m in metrics) >= 10
    assert any("validation loss=" in m for m in messages)
    page = client.fine_tuning.jobs.list_events(job.id, limit=2)
    older = client.fine_tuning.jobs.list_events(job.id, limit=2, after=page.data[-1].id)
    assert page.has_more and older.data[0].id != page.data[0].id
    assert job.id in {j.id for j in client.fine_tuning.jobs.list().data}


def test_fine_tuned_model_is_served_at_once_and_has_learned_the_rule(
    tuned: dict[str, Any], tmp_path: Path
) -> None:
    client, model = tuned["client"], tuned["job"].fine_tuned_model
    assert model in {m.id for m in client.models.list().data}
    images = colour_task.write_images(tmp_path, 1, seed=3)
    learned, base = answers(client, model, images), answers(client, "tiny", images)
    assert right(learned, images) >= 4 and right(base, images) <= 1, (images, learned, base)


def test_fine_tuned_model_exported_by_name_answers_outside_as_it_is_served(
    tuned: dict[str, Any], gateway: GatewayProcess, tmp_path: Path
) -> None:
    """Take the model home: exported by name (``POST /vlm/v2/exports/``) and downloaded, the fine-tuned
    model gives the gateway + vLLM's greedy answers on new images as ``merged`` in transformers and as
    ``adapter`` with peft on the base."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    client, model = tuned["client"], tuned["job"].fine_tuned_model
    images = colour_task.write_images(tmp_path / "images", 1, seed=5)
    served = [
        (ask_colour(client, model, path, 16).choices[0].message.content or "").strip() for path, _ in images
    ]
    api = Platform(gateway.url, tuned["key"], timeout_s=120)
    merged_dir = api.export("/vlm/v2/exports/", {"model": model, "format": "merged"}, tmp_path / "merged")
    adapter_dir = api.export("/vlm/v2/exports/", {"model": model, "format": "adapter"}, tmp_path / "adapter")
    processor = AutoProcessor.from_pretrained(str(merged_dir))
    merged = AutoModelForImageTextToText.from_pretrained(str(merged_dir)).eval()
    base = AutoModelForImageTextToText.from_pretrained(str(gateway.model_dir))
    with_adapter = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
    for local in (merged, with_adapter):
        inputs = [image_inputs(processor, path, colour_task.PROMPT) for path, _ in images]
        assert [greedy(local, processor, i, 16).strip() for i in inputs] == served
    learned = sum(
        a == colour_task.target_for(COMPLEMENT[c]) for a, (_, c) in zip(served, images, strict=True)
    )
    assert learned >= 4, served  # the adapter is in effect: the base model names the colour it sees


def test_checkpoints_are_servable_and_deletable(tuned: dict[str, Any], tmp_path: Path) -> None:
    client, job = tuned["client"], tuned["job"]
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == [60, 57]
    newest = checkpoints[0]
    assert newest.fine_tuned_model_checkpoint == f"{job.fine_tuned_model}:ckpt-step-60"
    assert newest.metrics.train_loss is not None and newest.metrics.valid_loss is not None
    name = checkpoints[1].fine_tuned_model_checkpoint
    assert name in {m.id for m in client.models.list().data}
    assert len(answers(client, name, colour_task.write_images(tmp_path, 1, seed=4)[:2])) == 2  # it answers
    assert client.models.delete(name).deleted is True
    assert name not in {m.id for m in client.models.list().data}
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id).data] == [60]
    with pytest.raises(openai.PermissionDeniedError):
        client.models.delete("tiny")


def test_a_second_job_is_cancelled(tuned: dict[str, Any]) -> None:
    client = tuned["client"]
    job = client.fine_tuning.jobs.create(
        model="tiny", training_file=tuned["train"].id, hyperparameters={"n_epochs": 50, "batch_size": 1}
    )
    running = wait_for(client, job.id, ("running", "failed"))
    assert running.status == "running", running
    while not any(e.type == "metrics" for e in client.fine_tuning.jobs.list_events(job.id).data):
        time.sleep(0.5)
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.fine_tuned_model is None
    with pytest.raises(openai.ConflictError):
        client.fine_tuning.jobs.cancel(job.id)


def test_bad_files_are_refused_naming_every_bad_line(tuned: dict[str, Any]) -> None:
    client, root = tuned["client"], tuned["root"]
    good = jsonl(root / "bad", 1, seed=5).decode().splitlines()
    path = next((root / "bad").glob("*.png"))
    stored = {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "image://no-such-image"}}],
    }
    ftp = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://127.0.0.1/x.png"}}]}
    answer = {"role": "assistant", "content": "x"}
    lines = [good[0], "{not json", json.dumps({"messages": [user_turn(path)]}),
             json.dumps({"messages": [stored, answer]}), json.dumps({"messages": [ftp, answer]})]  # fmt: skip
    before = {f.id for f in client.files.list().data}
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("bad.jsonl", "\n".join(lines).encode()), purpose="fine-tune")
    message = caught.value.message
    assert "line 2: not valid JSON" in message and "line 3: no assistant message" in message, message
    with pytest.raises(openai.BadRequestError) as caught:  # structure fine; media refused, every line named
        client.files.create(
            file=("bad.jsonl", "\n".join([lines[0], *lines[3:]]).encode()), purpose="fine-tune"
        )
    message = caught.value.message
    assert "line 2: " in message and "no stored image `no-such-image`" in message, message
    assert "line 3: " in message and "`ftp:`" in message, message
    assert {f.id for f in client.files.list().data} == before  # nothing half-accepted
    with pytest.raises(openai.BadRequestError, match="validation_file"):
        other = client.files.create(file=("notes.txt", b"hello"), purpose="user_data")
        client.fine_tuning.jobs.create(
            model="tiny", training_file=tuned["train"].id, validation_file=other.id
        )
    with pytest.raises(openai.BadRequestError, match="model"):
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=tuned["train"].id)
    with pytest.raises(openai.BadRequestError, match="n_epochs"):
        client.fine_tuning.jobs.create(
            model="tiny", training_file=tuned["train"].id, hyperparameters={"n_epochs": 0}
        )


def test_other_workspace_sees_none_of_it(tuned: dict[str, Any], gateway: GatewayProcess) -> None:
    stranger = keys_cli(gateway, "create", "--user", "ft-stranger", "--workspace", "ft-elsewhere")
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=stranger, max_retries=0, timeout=60)
    job, train = tuned["job"], tuned["train"]
    assert client.files.list().data == [] and client.fine_tuning.jobs.list().data == []
    for call in (
        lambda: client.files.retrieve(train.id),
        lambda: client.files.content(train.id),
        lambda: client.files.delete(train.id),
        lambda: client.fine_tuning.jobs.retrieve(job.id),
        lambda: client.fine_tuning.jobs.cancel(job.id),
        lambda: client.fine_tuning.jobs.list_events(job.id),
        lambda: client.models.delete(job.fine_tuned_model),
        lambda: client.chat.completions.create(
            model=job.fine_tuned_model, messages=[{"role": "user", "content": "hi"}], max_tokens=2
        ),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert job.fine_tuned_model not in {m.id for m in client.models.list().data}
    with pytest.raises(openai.BadRequestError, match="training_file"):
        client.fine_tuning.jobs.create(model="tiny", training_file=train.id)


def test_the_job_is_one_of_the_training_jobs_and_the_model_can_be_deleted(
    tuned: dict[str, Any], gateway: GatewayProcess
) -> None:
    import httpx

    client, job = tuned["client"], tuned["job"]
    run_id = uuid.UUID(hex=job.id.removeprefix("ftjob-"))
    headers = {"Authorization": f"Bearer {tuned['key']}"}
    same = httpx.get(f"{gateway.url}/vlm/v2/training-job/{run_id}/", headers=headers)
    assert same.status_code == 200 and same.json()["status"] == "succeeded" and same.json()["task"] is None
    assert same.json()["step"] == 60
    assert client.models.delete(job.fine_tuned_model).deleted is True
    assert job.fine_tuned_model not in {m.id for m in client.models.list().data}
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model=job.fine_tuned_model, messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
