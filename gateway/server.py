"""Run the gateway under uvicorn until SIGINT or SIGTERM; shutdown stops the engine (lifespan ``finally``)."""

from __future__ import annotations

import logging

import uvicorn

from gateway.app import create_app, stderr_say
from gateway.settings import Settings


def usage_banner(settings: Settings, model: str) -> str:
    key = settings.api_keys[0] if settings.api_keys else "none"
    base = f"http://{settings.host}:{settings.port}/v1"
    return (
        f"gateway listening on http://{settings.host}:{settings.port}  (health: /health, metrics: /metrics, "
        f"API docs: /docs)\n"
        f"  call it with the openai client:\n"
        f"    from openai import OpenAI\n"
        f'    client = OpenAI(base_url="{base}", api_key="{key}")\n'
        f'    client.chat.completions.create(model="{model}", '
        f'messages=[{{"role": "user", "content": "Hello!"}}])'
    )


def run_server(settings: Settings) -> int:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "httpx2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    model = settings.engine_name if settings.model else "MODEL"
    stderr_say(usage_banner(settings, model))
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown: already stopped
        stderr_say("stopped")
        return 130
    return 0 if server.started else 1
