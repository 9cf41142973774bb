"""Build the colour task (tests/support/colour_task.py) over the platform API, as a user would.

``build_colour_task`` takes any HTTP client with ``post``/``patch`` that returns ``httpx``-like responses
(``httpx.Client``, Litestar's test clients), sync or async: it uploads generated images, a dataset with a
result template and a typed variable, annotated samples (held-out ones marked ``test``) and a task.
The answer to learn is the complementary colour, which the tiny base model gets wrong every time.
"""

from __future__ import annotations

import base64
import inspect
from pathlib import Path
from typing import Any

from tests.support import colour_task

TEMPLATE = '{"color": "{{color}}"}'
COMPLEMENT = {"red": "green", "green": "red", "blue": "yellow", "yellow": "blue", "black": "white",
              "white": "black"}  # fmt: skip
VARIABLE = {"name": "color", "type": "string", "choices": colour_task.TASK_COLOURS}


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
