"""The fine-tuning half of the quick start, done the way a user would do it: over the HTTP API.

Creates a dataset whose result template is ``{"color": "{{color}}"}`` and whose rule is "name the
complementary colour" (something the tiny base model cannot guess: it names the colour it sees), uploads
generated images as annotated samples (a third of them held out as test samples), creates a task, trains it,
prints progress and the new version's held-out score next to the base model's, and asks the trained model
through the ``openai`` client.
"""

from __future__ import annotations

import base64
import io
import random
import time
from collections.abc import Callable
from typing import Any

import httpx

from models_store.tiny_model import COLOURS

COMPLEMENT = {"red": "green", "green": "red", "blue": "yellow", "yellow": "blue", "black": "white",
              "white": "black"}  # fmt: skip
PROMPT = "Classify the image colour. Reply with JSON."
TEMPLATE = '{"color": "{{color}}"}'


def jittered_png(colour: str, rng: random.Random) -> bytes:
    from PIL import Image

    rgb = tuple(max(0, min(255, c + rng.randint(-20, 20))) for c in COLOURS[colour])
    buffer = io.BytesIO()
    Image.new("RGB", (56, 56), rgb).save(buffer, format="PNG")
    return buffer.getvalue()


class DemoApi:
    def __init__(self, url: str, key: str) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Token {key}"}, timeout=120)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, path, json=body)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()


def build_task(api: DemoApi, per_colour: int = 6, seed: int = 0) -> dict[str, Any]:
    """A dataset with one typed variable, annotated samples (2 per colour held out) and a task."""
    dataset = api.call("POST", "/vlm/v2/dataset/", {"name": "quick start: complementary colours",
                                                    "user_prompt": PROMPT})  # fmt: skip
    variable = api.call("POST", "/vlm/v2/variable/", {
        "dataset": dataset["id"], "name": "color", "type": "string", "required": True,
        "choices": ",".join(COMPLEMENT),
    })  # fmt: skip
    api.call("PATCH", f"/vlm/v2/dataset/{dataset['id']}/", {"result_template": TEMPLATE})
    rng = random.Random(seed)
    for colour in COMPLEMENT:
        for i in range(per_colour):
            png = base64.b64encode(jittered_png(colour, rng)).decode()
            image = api.call("POST", "/vlm/v2/image/", {"_base64": png})
            sample = api.call("POST", "/vlm/v2/sample/", {
                "dataset": dataset["id"], "name": f"{colour}-{i}", "image_ids": [image["id"]], "test": i < 2,
            })  # fmt: skip
            value = {"dataset_variable": variable["id"], "value": {"value": COMPLEMENT[colour]}}
            api.call("POST", f"/vlm/v2/sample/{sample['id']}/add-variable-value/", value)
    return api.call("POST", "/vlm/v2/task/", {"name": "quick start colours", "datasets": [dataset["id"]]})


def train(api: DemoApi, task: dict[str, Any], say: Callable[[str], None], steps: int = 60) -> dict[str, Any]:
    job = api.call("POST", f"/vlm/v2/task/{task['id']}/train/", {"hyperparameters": {"max_steps": steps}})
    say(f"training job {job['id']}: {job['train_samples']} training and {job['test_samples']} test samples")
    while job["status"] in ("queued", "running"):  # the gateway prints the job's progress bar
        time.sleep(2)
        job = api.call("GET", f"/vlm/v2/training-job/{job['id']}/")
    if job["status"] != "succeeded":
        raise RuntimeError(f"training {job['status']}: {job['error']}")
    return job


def run_training_demo(url: str, key: str, say: Callable[[str], None]) -> None:
    from openai import OpenAI

    from models_store.tiny_pretrain import solid_image_data_uri

    api = DemoApi(url, key)
    say("fine-tuning demo: a task that names the complementary colour of an image")
    task = build_task(api)
    train(api, task, say)
    (version,) = api.call("GET", f"/vlm/v2/task/{task['id']}/models/")["results"][:1]
    metrics = version["metrics"]
    say(f"held-out score: trained version {metrics['new']['score']:.0%}, base model "
        f"{metrics['base']['score']:.0%} ({metrics['new']['samples']} test samples)")  # fmt: skip
    client = OpenAI(base_url=url + "/v1", api_key=key)
    model = f"task-{task['id']}"
    for colour in ("red", "blue"):
        answer = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": solid_image_data_uri(colour)}},
                {"type": "text", "text": PROMPT},
            ]}],
            max_tokens=24, temperature=0,
            extra_body={"result_template": TEMPLATE,
                        "variables": [{"name": "color", "type": "string", "choices": list(COMPLEMENT)}]},
        )  # fmt: skip
        say(f"demo: {model} on a {colour} image -> {answer.choices[0].message.content}")
