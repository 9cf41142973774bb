"""``vlmgw quickstart``: the offline story in one command.

Builds the tiny model (cached after the first time), starts the gateway with a supervised vLLM on it, waits
until the engine is ready, sends a first image question through the official ``openai`` client, then (unless
``--no-training``) fine-tunes a small task over the platform API, prints its evaluation and asks the trained
model (``gateway.demo_training``), prints the code to call the gateway, and keeps serving until Ctrl-C.
"""

from __future__ import annotations

import os
import threading
import time

import httpx

from adapters.supervisor import is_cpu_build
from gateway.app import stderr_say
from gateway.settings import Settings

QUICKSTART_MODEL = "tiny-vlm"
DEMO_SNIPPET = """\
from openai import OpenAI
client = OpenAI(base_url="{base}", api_key="{key}")
answer = client.chat.completions.create(
    model="{model}",
    messages=[{{"role": "user", "content": [
        {{"type": "image_url", "image_url": {{"url": "data:image/png;base64,..."}}}},
        {{"type": "text", "text": "What colour is the image?"}},
    ]}}],
)
print(answer.choices[0].message.content)"""


def prepare_model(settings: Settings) -> Settings:
    """Build or reuse the pre-trained tiny model and point the settings at it."""
    from models_store.tiny_model import TinyModelSpec, install_tiny_model

    if settings.model or settings.engine_urls:
        return settings
    model_dir = settings.data_dir / "models" / QUICKSTART_MODEL
    stderr_say(f"preparing the tiny offline model in {model_dir} (first time: about 30 s)")
    install_tiny_model(model_dir, TinyModelSpec(pretrain_steps=300), progress=stderr_say)
    if is_cpu_build():
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    engine_args = settings.engine_args or ["--max-model-len", "2048"]
    name = settings.served_model_name or QUICKSTART_MODEL
    return settings.replace(model=str(model_dir), served_model_name=name, engine_args=engine_args)


def demo_when_ready(settings: Settings, key: str, training: bool = True, timeout_s: float = 900.0) -> None:
    """Wait for /health, then ask the model about a generated image through the openai client."""
    url = f"http://{settings.host}:{settings.port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(1)
    else:
        stderr_say("the engine did not become ready; see the log lines above")
        return
    try:
        run_demo(settings, url, key, training)
    except Exception as exc:  # the demo must never take the server down
        stderr_say(f"demo failed: {exc}")


def run_demo(settings: Settings, url: str, key: str, training: bool = True) -> None:
    from openai import OpenAI

    from models_store.tiny_pretrain import solid_image_data_uri

    client = OpenAI(base_url=url + "/v1", api_key=key)
    model = settings.engine_name if settings.model else client.models.list().data[0].id
    for colour in ("red", "blue"):
        answer = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": solid_image_data_uri(colour)}},
                {"type": "text", "text": "What colour is the image?"},
            ]}],
            max_tokens=16, temperature=0,
        )  # fmt: skip
        stderr_say(f"demo: a {colour} image -> {answer.choices[0].message.content!r}")
    if training:
        from gateway.demo_training import run_training_demo

        run_training_demo(url, key, stderr_say)
    snippet = DEMO_SNIPPET.format(base=url + "/v1", key=key, model=model)
    stderr_say(
        "the gateway is ready. Call it with the openai client:\n\n" + snippet + "\n\nCtrl-C stops everything."
    )


def first_key(settings: Settings) -> str:
    """Create an API key on the gateway's database (user ``user``, not an admin; ``default`` workspace) and
    print it.

    Every quick start makes a new key (the stored ones are hashed, so an old one cannot be shown again);
    ``vlmgw keys list`` / ``revoke`` manage them.
    """
    import asyncio

    from gateway.db.connection import open_database
    from gateway.db.keys import create_key

    async def create() -> str:
        async with open_database(settings.db_url):
            return (await create_key(name="quickstart")).key

    key = asyncio.run(create())
    stderr_say(
        f"your API key (for /v1 and /vlm/v2; shown once): {key}\n"
        f"  e.g. curl -H 'Authorization: Token {key}' http://{settings.host}:{settings.port}/vlm/v2/task/"
    )
    return key


def run_quickstart(settings: Settings, training: bool = True) -> int:
    from gateway.server import run_server

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings = prepare_model(settings)
    key = first_key(settings)
    threading.Thread(
        target=demo_when_ready, args=(settings, key, training), daemon=True, name="quickstart-demo"
    ).start()
    return run_server(settings)
