"""Take the model home, on real vLLM: a task trained over the API, exported over the API, answers outside
the gateway exactly as the gateway + vLLM answer with the trained adapter.

- ``merged``: the downloaded folder, loaded with transformers, gives the same greedy answers as the
  trained version through the gateway; the same folder served by a second vLLM gives them too (that one
  starts a vLLM of its own, about two minutes, so it runs only with ``pytest --second-engine``).
- ``adapter``: the downloaded adapter on the base model with peft gives them too.
- ``gguf``: the downloaded files read back with the ``gguf`` package (llama.cpp's own check is the
  benchmark ``benchmarks/gguf_llama_cpp.py``: llama-cpp-python builds from source for ~26 minutes).
Downloads are checked against their SHA-256 header.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pytest

from adapters.supervisor import free_port
from tests.integration.conftest import GatewayProcess, keys_cli
from tests.support import colour_task, health
from tests.support.export_model import greedy, image_inputs
from tests.support.platform_task import COMPLEMENT, Platform, ask_colour


@pytest.fixture(scope="module")
def version(gateway: GatewayProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A task trained over the API to answer the complementary colour as JSON; its version 1 and the key."""
    key = keys_cli(gateway, "create", "--user", "exporter", "--workspace", "export-ws")
    api = Platform(gateway.url, key, timeout_s=120)
    dataset = api.call("POST", "/vlm/v2/dataset/", {"name": "c", "user_prompt": colour_task.PROMPT}, 201)
    choices = ",".join(colour_task.TASK_COLOURS)
    body = {"dataset": dataset["id"], "name": "color", "type": "string", "choices": choices}
    variable = api.call("POST", "/vlm/v2/variable/", body, 201)
    api.call("PATCH", f"/vlm/v2/dataset/{dataset['id']}/", {"result_template": '{"color": "{{color}}"}'})
    root = tmp_path_factory.mktemp("export-task")
    train = colour_task.write_images(root / "train", 4, seed=1)
    test = colour_task.write_images(root / "test", 1, seed=2)
    for held_out, (path, colour) in [(False, p) for p in train] + [(True, p) for p in test]:
        image = api.call(
            "POST", "/vlm/v2/image/", {"_base64": base64.b64encode(path.read_bytes()).decode()}, 201
        )
        sample = api.call(
            "POST",
            "/vlm/v2/sample/",
            {"dataset": dataset["id"], "image_ids": [image["id"]], "test": held_out},
            201,
        )
        api.call(
            "POST", f"/vlm/v2/sample/{sample['id']}/add-variable-value/",
            {"dataset_variable": variable["id"], "value": {"value": COMPLEMENT[colour]}},
        )  # fmt: skip
    task = api.call("POST", "/vlm/v2/task/", {"name": "export me", "datasets": [dataset["id"]]}, 201)
    job = api.call("POST", f"/vlm/v2/task/{task['id']}/train/", {"hyperparameters": {"max_steps": 60}}, 201)
    job = api.wait(f"/vlm/v2/training-job/{job['id']}/")
    assert job["status"] == "succeeded", f"{job}\n{gateway.log_tail()}"
    (row,) = api.call("GET", f"/vlm/v2/task/{task['id']}/models/")["results"]
    return {"key": key, "api": api, "id": row["id"], "model": row["model"]}


@pytest.fixture(scope="module")
def new_images(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, str]]:
    return colour_task.write_images(tmp_path_factory.mktemp("new-images"), 1, seed=7)


def ask(client: openai.OpenAI, model: str, image: Path) -> str:
    return (ask_colour(client, model, image, max_tokens=16).choices[0].message.content or "").strip()


@pytest.fixture(scope="module")
def served_answers(
    gateway: GatewayProcess, version: dict[str, Any], new_images: list[tuple[Path, str]]
) -> list[str]:
    """The trained version's greedy answers through the gateway and vLLM; it learned the task."""
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=version["key"], max_retries=0, timeout=120)
    answers = [ask(client, version["model"], path) for path, _ in new_images]
    right = sum(
        a == colour_task.target_for(COMPLEMENT[c]) for a, (_, c) in zip(answers, new_images, strict=True)
    )
    assert right >= 4, answers  # the adapter is in effect: the base model names the colour it sees
    return answers


def export(version: dict[str, Any], fmt: str, into: Path) -> Path:
    """Export over the API, download the tar, check its SHA-256, unpack it; the export's folder."""
    api: Platform = version["api"]
    return api.export(f"/vlm/v2/model/{version['id']}/export/", {"format": fmt}, into)


def test_merged_export_answers_like_the_served_adapter(
    version: dict[str, Any], served_answers: list[str], new_images: list[tuple[Path, str]], tmp_path: Path
) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = export(version, "merged", tmp_path)
    model = AutoModelForImageTextToText.from_pretrained(str(folder)).eval()
    processor = AutoProcessor.from_pretrained(str(folder))
    local = [greedy(model, processor, image_inputs(processor, path, colour_task.PROMPT), 16).strip()
             for path, _ in new_images]  # fmt: skip
    assert local == served_answers


def test_adapter_export_answers_like_the_served_adapter(
    version: dict[str, Any], served_answers: list[str], new_images: list[tuple[Path, str]], tmp_path: Path,
    tiny_model_dir: Path,
) -> None:  # fmt: skip
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = export(version, "adapter", tmp_path)
    base = AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir))
    model = PeftModel.from_pretrained(base, str(folder)).eval()
    processor = AutoProcessor.from_pretrained(str(tiny_model_dir))
    local = [greedy(model, processor, image_inputs(processor, path, colour_task.PROMPT), 16).strip()
             for path, _ in new_images]  # fmt: skip
    assert local == served_answers


def test_gguf_export_over_the_api_reads_back(version: dict[str, Any], tmp_path: Path) -> None:
    import gguf

    folder = export(version, "gguf", tmp_path)
    stem = version["model"]
    text = gguf.GGUFReader(folder / f"{stem}.gguf")
    vision = gguf.GGUFReader(folder / f"mmproj-{stem}.gguf")
    assert text.fields["general.architecture"].contents() == "qwen2vl"
    assert vision.fields["clip.projector_type"].contents() == "qwen2vl_merger"
    assert len(text.tensors) == 2 + 2 * 12 and len(vision.tensors) == 2 + 2 * 16 + 6


@pytest.fixture
def merged_vllm(version: dict[str, Any], tmp_path: Path) -> Any:
    """A second vLLM serving the downloaded merged folder (stopped with its process group afterwards)."""
    from adapters.supervisor import vllm_installed

    if not vllm_installed():
        pytest.fail("vLLM is not installed: run `uv sync --extra cpu`")
    folder = export(version, "merged", tmp_path / "merged")
    port = free_port()
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder),
        "--served-model-name", "merged", "--host", "127.0.0.1", "--port", str(port), "--dtype", "bfloat16",
        "--max-model-len", "2048", "--max-num-seqs", "8",
    ]  # fmt: skip
    log = (tmp_path / "vllm.log").open("wb")
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        if not health.wait_healthy(url, 600, proc):
            log_tail = (tmp_path / "vllm.log").read_text()[-3000:]
            pytest.fail(f"vLLM did not become healthy on the merged folder (exit {proc.poll()}):\n{log_tail}")
        yield openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=120)
    finally:
        health.stop_group(proc)
        log.close()


@pytest.mark.second_engine  # CI proves the merged folder with transformers (above); this adds vLLM itself
def test_merged_export_serves_in_vllm_with_the_same_answers(
    merged_vllm: openai.OpenAI, served_answers: list[str], new_images: list[tuple[Path, str]]
) -> None:
    assert [ask(merged_vllm, "merged", path) for path, _ in new_images] == served_answers
