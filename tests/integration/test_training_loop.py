"""The whole fine-tuning loop as a new user runs it, on real vLLM and the real trainer.

A database key, images uploaded over the platform API, a dataset with a result template and a typed
variable, annotated samples (test samples held out), a task, ``POST /train/``; then the job's progress and
events, the new version's metrics next to the base model's, and the task's model answering through the
``openai`` client, template-valid, under its task name and its version name. Then the rules around it: a
second key's workspace cannot see or use the model, and a long job can be cancelled and resumed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.integration.conftest import GatewayProcess, keys_cli
from tests.support import colour_task
from tests.support.platform_task import COMPLEMENT, Platform, ask_templated, build_colour_task


@pytest.fixture(scope="module")
def trained(gateway: GatewayProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A task trained to name the complementary colour of jittered solid-colour images (24 train, 12 test)."""
    key = keys_cli(gateway, "create", "--user", "trainer", "--workspace", "training-ws")
    api = Platform(gateway.url, key)
    root = tmp_path_factory.mktemp("colours")
    task = asyncio.run(build_colour_task(api.http, {}, root, train_per_colour=4, test_per_colour=2))
    job = api.call("POST", f"/vlm/v2/task/{task['id']}/train/", {"hyperparameters": {"max_steps": 60}}, 201)
    assert (job["train_samples"], job["test_samples"]) == (24, 12)
    job = api.wait(f"/vlm/v2/training-job/{job['id']}/", timeout_s=600)
    assert job["status"] == "succeeded", f"{job}\n{gateway.log_tail()}"
    return {"key": key, "api": api, "task": task, "job": job}


def test_job_reports_progress_events_and_a_loss_curve(trained: dict[str, Any]) -> None:
    api, job = trained["api"], trained["job"]
    assert job["progress"] == 1.0 and job["step"] == 60 and job["version"] == 1
    events = api.call("GET", f"/vlm/v2/training-job/{job['id']}/events/?page_size=500")["results"]
    steps = [e for e in events if e["type"] == "metrics"]
    assert steps and steps[-1]["data"]["step"] == 60 and steps[-1]["data"]["loss"] < steps[0]["data"]["loss"]
    (version,) = api.call("GET", f"/vlm/v2/task/{trained['task']['id']}/models/")["results"]
    curve = api.http.get(f"/vlm/v2/model/{version['id']}/loss-curve/")
    assert curve.status_code == 200 and curve.content.startswith(b"\x89PNG")


def test_new_version_beats_the_base_model_on_held_out_samples(trained: dict[str, Any]) -> None:
    (version,) = trained["api"].call("GET", f"/vlm/v2/task/{trained['task']['id']}/models/")["results"]
    metrics = version["metrics"]
    new, base = metrics["new"], metrics["base"]
    assert new["samples"] == base["samples"] == 12
    assert new["score"] >= 0.8, metrics
    assert new["score"] > base["score"] + 0.5, metrics
    assert version["production"] is True  # auto_deploy


@pytest.mark.parametrize("suffix", ["", "-v1"])
def test_task_model_answers_through_the_openai_client(
    trained: dict[str, Any], gateway: GatewayProcess, tmp_path: Path, suffix: str
) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=trained["key"], max_retries=0, timeout=120)
    model = f"task-{trained['task']['id']}{suffix}"
    listed = {m.id for m in client.models.list().data}
    assert model in listed
    hits = 0
    for path, colour in colour_task.write_images(tmp_path, 1, seed=3):
        answer = ask_templated(client, model, path)
        assert answer.model == f"task-{trained['task']['id']}-v1"
        parsed = json.loads(answer.choices[0].message.content or "")
        assert parsed["color"] in colour_task.TASK_COLOURS  # template-valid, always
        hits += parsed["color"] == COMPLEMENT[colour]
    assert hits >= 4, f"only {hits} of 6 new images right"


def test_other_workspace_cannot_see_or_use_the_task_model(
    trained: dict[str, Any], gateway: GatewayProcess
) -> None:
    stranger = keys_cli(gateway, "create", "--user", "stranger", "--workspace", "elsewhere-ws")
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=stranger, max_retries=0, timeout=60)
    model = f"task-{trained['task']['id']}"
    assert not any(m.id.startswith(model) for m in client.models.list().data)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )


def test_cancel_then_resume_finishes_with_version_2(trained: dict[str, Any]) -> None:
    api, task = trained["api"], trained["task"]
    job = api.call("POST", f"/vlm/v2/task/{task['id']}/train/", {"hyperparameters": {"max_steps": 80}}, 201)
    conflict = api.http.post(f"/vlm/v2/task/{task['id']}/train/")
    assert conflict.status_code == 409
    while api.call("GET", f"/vlm/v2/training-job/{job['id']}/")["step"] < 3:
        time.sleep(0.5)
    cancelled = api.call("POST", f"/vlm/v2/training-job/{job['id']}/cancel/")
    assert cancelled["status"] == "cancelled" and cancelled["version"] is None
    events = api.call("GET", f"/vlm/v2/training-job/{job['id']}/events/?page_size=500")["results"]
    stopped_at = next(e["data"]["step"] for e in reversed(events) if e["data"].get("event") == "cancelled")
    api.call("POST", f"/vlm/v2/training-job/{job['id']}/resume/")
    job = api.wait(f"/vlm/v2/training-job/{job['id']}/", timeout_s=600)
    assert job["status"] == "succeeded" and job["version"] == 2, job
    events = api.call("GET", f"/vlm/v2/training-job/{job['id']}/events/?page_size=500")["results"]
    restart = [e for e in events if e["data"].get("event") == "start"][-1]
    assert restart["data"].get("resumed_from_step") == stopped_at, restart
    (v2, _v1) = api.call("GET", f"/vlm/v2/task/{task['id']}/models/")["results"]
    assert v2["metrics"]["models"]["previous"] == f"task-{task['id']}-v1"


def test_task_inference_returns_text_and_typed_variables(trained: dict[str, Any], tmp_path: Path) -> None:
    api, task = trained["api"], trained["task"]
    ((path, colour),) = colour_task.write_images(tmp_path, 1, seed=4)[:1]
    image = {"_base64": base64.b64encode(path.read_bytes()).decode()}
    answer = api.call("POST", f"/vlm/v2/task/{task['id']}/predict/", {"images": [image]})
    production = api.call("GET", f"/vlm/v2/task/{task['id']}/")["production_version"]
    assert answer["model"] == f"task-{task['id']}-v{production}" and answer["version"] == production
    assert answer["variables"] == {"color": COMPLEMENT[colour]}
    assert json.loads(answer["text"]) == answer["variables"]
    base = api.call("POST", f"/vlm/v2/task/{task['id']}/predict/", {"images": [image], "version": 0})
    assert base["model"] == "tiny" and base["variables"]["color"] in colour_task.TASK_COLOURS
