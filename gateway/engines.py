"""The engines behind a gateway, from its settings: the given ``--engine-url`` servers, or one spawned and
supervised vLLM server for ``--model`` (with the flags the gateway's own features need)."""

from __future__ import annotations

from collections.abc import Callable

from adapters.engine_client import EngineClient
from adapters.pool import Engine
from adapters.supervisor import EngineSpec, VLLMSupervisor, free_port
from gateway.metrics import Metrics
from gateway.settings import Settings

Say = Callable[[str], None]


def build_engines(settings: Settings, say: Say) -> list[Engine]:
    """Engines from settings: the given URLs, or one spawned vLLM server for ``settings.model``."""
    if settings.engine_urls:
        return [Engine(engine_client(url, settings)) for url in settings.engine_urls]
    if settings.model is None:
        raise ValueError("no engine: give --model to spawn vLLM, or --engine-url for running servers")
    port = settings.engine_port or free_port()
    extra_args = [*structured_backend_args(settings), *settings.engine_args]
    if media_via_files(settings) and "--allowed-local-media-path" not in extra_args:
        extra_args += ["--allowed-local-media-path", str(settings.media_handoff_dir.resolve())]
    spec = EngineSpec(
        model=settings.model,
        served_name=settings.engine_name,
        port=port,
        max_lora_rank=settings.engine_max_lora_rank,
        max_loras=settings.engine_max_loras,
        extra_args=extra_args,
        log_path=settings.logs_dir / f"engine-{port}.log",
    )
    supervisor = VLLMSupervisor(
        spec, say=say, max_backoff_s=settings.engine_restart_max_backoff_s,
        start_timeout_s=settings.engine_start_timeout_s,
    )  # fmt: skip
    return [Engine(engine_client(spec.url, settings), supervisor=supervisor, expected_model=spec.served_name)]


def media_via_files(settings: Settings) -> bool:
    """Hand media to the engine as local files: forced by the setting, or (auto) when we spawn the engine."""
    if settings.media_handoff == "auto":
        return settings.model is not None and not settings.engine_urls
    return settings.media_handoff == "file"


GRAMMAR_BACKENDS = ("xgrammar", "guidance")


def engine_enforces_grammars(settings: Settings) -> bool:
    """Whether the engines' structured-output backend enforces grammars: vLLM's outlines backend refuses
    them. The backend is ``structured_backend`` unless the engine arguments name their own (then trusted)."""
    if any(a.startswith("--structured-outputs-config") for a in settings.engine_args):
        return True
    return settings.structured_backend in GRAMMAR_BACKENDS


def structured_backend_args(settings: Settings) -> list[str]:
    """vLLM flags for the structured-output backend, unless the user passed their own after ``--``."""
    if any(a.startswith("--structured-outputs-config") for a in settings.engine_args):
        return []
    return ["--structured-outputs-config.backend", settings.structured_backend]


def engine_client(url: str, settings: Settings) -> EngineClient:
    return EngineClient(
        url,
        connect_timeout_s=settings.engine_connect_timeout_s,
        request_timeout_s=settings.engine_request_timeout_s,
    )


def engine_metrics(metrics: Metrics) -> Callable[[Engine], None]:
    """A pool listener that keeps the engine gauges in ``/metrics`` current."""

    def update(engine: Engine) -> None:
        metrics.engine_up.labels(engine.url).set(1 if engine.up else 0)
        if engine.supervisor is not None:
            metrics.engine_restarts.labels(engine.url).set(engine.supervisor.restarts)

    return update
