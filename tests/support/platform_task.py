"""Build the colour task (tests/support/colour_task.py) over the platform API, as a user would.

``build_colour_task`` takes any HTTP client with ``post``/``patch`` that returns ``httpx``-like responses
(``httpx.Client``, Litestar's test clients), sync or async: it uploads generated images, a dataset with a
result template and a typed variable, annotated samples (held-out ones marked ``test``) and a task.
The answer to learn is the complementary colour, which the tiny base model gets wrong every time.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import io
import tarfile
import time
from pathlib import Path
from typing import Any

import httpx
import openai

from tests.support import colour_task

TEMPLATE = '{"color": "{{color}}"}'
COMPLEMENT = {"red": "green", "green": "red", "blue": "yellow", "yellow": "blue", "black": "white",
              "white": "black"}  # fmt: skip
VARIABLE = {"name": "color", "type": "string", "choices": colour_task.TASK_COLOURS}


class Platform:
    """A platform API user with one key: ``call`` checks the status and returns the JSON."""

    def __init__(self, url: str, key: str, timeout_s: float = 60) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Token {key}"}, timeout=timeout_s)

    def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = self.http.request(method, path, json=body)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def wait(
        self, path: str, busy: tuple[str, ...] = ("queued", "running"), timeout_s: float = 900
    ) -> dict[str, Any]:
        """GET ``path`` until its ``status`` is not ``busy`` any more (or the time is up); the last body."""
        deadline = time.monotonic() + timeout_s
        body: dict[str, Any] = self.call("GET", path)
        while body["status"] in busy and time.monotonic() < deadline:
            time.sleep(1)
            body = self.call("GET", path)
        return body

    def export(self, path: str, body: dict[str, Any], into: Path) -> Path:
        """Start an export (POST ``body`` to ``path``), wait for it, download the tar, check its SHA-256 and
        unpack it into ``into``; the export's folder."""
        started = self.call("POST", path, body, 201)
        done = self.wait(f"/vlm/v2/export/{started['id']}/")
        assert done["status"] == "succeeded", done
        download = self.http.get(done["download_url"])
        assert download.status_code == 200
        digest = hashlib.sha256(download.content).hexdigest()
        assert digest == download.headers["x-checksum-sha256"] == done["sha256"]
        with tarfile.open(fileobj=io.BytesIO(download.content)) as tar:
            tar.extractall(into, filter="data")
        (folder,) = into.iterdir()
        return folder


def ask_colour(client: openai.OpenAI, model: str, image: Path, max_tokens: int = 24, **options: Any) -> Any:
    """The greedy chat completion of ``model`` for the task's prompt about ``image``."""
    uri = "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()
    return client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": uri}},
            {"type": "text", "text": colour_task.PROMPT},
        ]}],  # type: ignore[misc,list-item]
        max_tokens=max_tokens, temperature=0, **options,
    )  # fmt: skip


def ask_templated(client: openai.OpenAI, model: str, image: Path) -> Any:
    """``ask_colour`` under the task's result template and variable."""
    return ask_colour(client, model, image, extra_body={"result_template": TEMPLATE, "variables": [VARIABLE]})


async def _call(client: Any, method: str, path: str, body: Any, status: int, headers: dict[str, str]) -> Any:
    response = getattr(client, method)(path, json=body, headers=headers)
    if inspect.isawaitable(response):
        response = await response
    assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
    return response.json()


async def build_colour_task(
    client: Any, headers: dict[str, str], root: Path, *, train_per_colour: int = 2, test_per_colour: int = 1
) -> dict[str, Any]:
    """The task (its JSON) after creating everything it trains on."""
    body = {"name": "colours", "user_prompt": colour_task.PROMPT}
    dataset = await _call(client, "post", "/vlm/v2/dataset/", body, 201, headers)
    variable = {"dataset": dataset["id"], "name": "color", "type": "string",
                "choices": ",".join(colour_task.TASK_COLOURS), "required": True}  # fmt: skip
    color = await _call(client, "post", "/vlm/v2/variable/", variable, 201, headers)
    template = {"result_template": TEMPLATE}
    await _call(client, "patch", f"/vlm/v2/dataset/{dataset['id']}/", template, 200, headers)
    pairs = [(False, p) for p in colour_task.write_images(root / "train", train_per_colour, seed=1)]
    pairs += [(True, p) for p in colour_task.write_images(root / "test", test_per_colour, seed=2)]
    for test, (path, colour) in pairs:
        upload = {"_base64": base64.b64encode(path.read_bytes()).decode()}
        image = await _call(client, "post", "/vlm/v2/image/", upload, 201, headers)
        sample = await _call(client, "post", "/vlm/v2/sample/", {"dataset": dataset["id"], "name": path.stem,
                             "image_ids": [image["id"]], "test": test}, 201, headers)  # fmt: skip
        await _call(client, "post", f"/vlm/v2/sample/{sample['id']}/add-variable-value/",
                    {"dataset_variable": color["id"], "value": {"value": COMPLEMENT[colour]}}, 200,
                    headers)  # fmt: skip
    task: dict[str, Any] = await _call(
        client, "post", "/vlm/v2/task/", {"name": "colour task", "datasets": [dataset["id"]]}, 201, headers
    )
    return task
