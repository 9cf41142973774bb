"""A LoRA adapter trained by `python -m finetune` and served by the gateway on real vLLM (CPU), through the
official openai client: listed with its parent, loaded on first use, answering the learned task where the
base model does not."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.integration.conftest import ADAPTER, MODEL
from tests.support import colour_task


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    """(data URI, expected answer) for new jittered images of every task colour."""
    root = tmp_path_factory.mktemp("held-out")
    return [
        ("data:image/png;base64," + base64.b64encode(path.read_bytes()).decode(), colour_task.target_for(c))
        for path, c in colour_task.write_images(root, 2, seed=2)
    ]


def ask(client: openai.OpenAI, model: str, image: str) -> str:
    parts: list[Any] = [
        {"type": "image_url", "image_url": {"url": image}},
        {"type": "text", "text": colour_task.PROMPT},
    ]
    resp = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": parts}], max_tokens=16, temperature=0
    )
    assert resp.model == model
    return (resp.choices[0].message.content or "").strip()


def test_adapter_is_listed_with_its_parent(client: openai.OpenAI, trained_adapter: Path) -> None:
    models = {m.id: m for m in client.models.list().data}
    assert MODEL in models and ADAPTER in models
    assert models[ADAPTER].model_extra is not None and models[ADAPTER].model_extra["parent"] == MODEL


def test_adapter_learned_the_task_and_the_base_did_not(
    client: openai.OpenAI, held_out: list[tuple[str, str]]
) -> None:
    tuned = [ask(client, ADAPTER, image) == want for image, want in held_out]
    base = [ask(client, MODEL, image) == want for image, want in held_out]
    assert sum(tuned) / len(tuned) >= 0.9, f"adapter right on only {sum(tuned)}/{len(tuned)} held-out images"
    assert sum(base) / len(base) <= 0.2, "the base model already does the task: the test proves nothing"


def test_adapter_streams(client: openai.OpenAI, held_out: list[tuple[str, str]]) -> None:
    image, want = held_out[0]
    parts: list[Any] = [
        {"type": "image_url", "image_url": {"url": image}},
        {"type": "text", "text": colour_task.PROMPT},
    ]
    stream = client.chat.completions.create(
        model=ADAPTER,
        messages=[{"role": "user", "content": parts}],
        max_tokens=16,
        temperature=0,
        stream=True,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text.strip() == want


def test_unknown_adapter_name_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-adapter", messages=[{"role": "user", "content": "hi"}])
    assert "no-such-adapter" in str(info.value)
