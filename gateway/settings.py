"""Typed settings: defaults, then ``VLMGW_*`` environment variables, then command-line flags.

Every field can be set from the environment as ``VLMGW_<FIELD>`` (e.g. ``VLMGW_PORT=9000``). List fields take
comma-separated values, except ``engine_args`` which is split like a shell command line.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

ENV_PREFIX = "VLMGW_"
STRUCTURED_BACKENDS = ("outlines", "xgrammar", "guidance")


class Settings(msgspec.Struct, kw_only=True):
    """Gateway configuration; immutable once the app is built (use ``replace`` to derive)."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path.home() / ".local" / "share" / "vlm-gateway"
    # Engine: either spawn one vLLM server for `model`, or use running servers at `engine_urls`.
    model: str | None = None
    served_model_name: str | None = None
    engine_urls: list[str] = msgspec.field(default_factory=list)
    engine_args: list[str] = msgspec.field(default_factory=list)
    engine_port: int | None = None
    engine_start_timeout_s: float = 900.0
    engine_max_lora_rank: int = 16
    engine_max_loras: int = 4
    engine_restart_max_backoff_s: float = 30.0
    # Structured output: the spawned vLLM's backend (outlines, xgrammar or guidance) and the number of
    # compiled constraints (schemas, regexes, templates) kept per process.
    structured_backend: str = "outlines"
    structured_cache_size: int = 256
    # LoRA adapters served by name: "NAME=DIR" items (--adapter, repeatable; VLMGW_ADAPTERS comma-separated),
    # and how many one engine holds before the least recently used is unloaded (default engine_max_loras).
    adapters: list[str] = msgspec.field(default_factory=list)
    adapter_capacity: int | None = None
    # Requests to the engine.
    engine_connect_timeout_s: float = 5.0
    engine_request_timeout_s: float = 600.0
    engine_poll_interval_s: float = 2.0
    # HTTP API.
    api_keys: list[str] = msgspec.field(default_factory=list)
    # Platform data: SQLite file in data_dir by default; a postgres:// URL lets several gateways share one.
    database_url: str | None = None
    # How long a verified database API key is trusted before it is checked again (revocation delay).
    key_cache_ttl_s: float = 10.0
    max_body_bytes: int = 64 * 1024 * 1024
    log_level: str = "info"
    access_log: bool = False
    # Media in chat requests (README "Images and videos"). Limits per request, image and video.
    media_max_images: int = 10
    media_max_videos: int = 2
    media_image_max_bytes: int = 20 * 1024 * 1024
    media_image_max_pixels: int = 50_000_000  # refused above (decompression bombs)
    media_image_resize_pixels: int = 0  # downscaled above, aspect kept (0: off)
    media_video_max_bytes: int = 100 * 1024 * 1024
    media_video_max_duration_s: float = 600.0
    media_video_max_frames: int = 32
    media_video_max_pixels: int = 3840 * 2160
    media_video_frames: int = 8  # default number of sampled frames
    media_video_mode: Literal["frames", "native"] = "frames"
    media_video_frame_pixels: int = 640 * 640  # sampled frames are downscaled above this
    media_decode_concurrency: int = 2
    # Decoders run in worker processes (a crash or memory blow-up costs a worker, not the gateway), each
    # capped at media_decode_memory_bytes of address space (0: no cap); "thread" runs them in-process.
    media_decode_isolation: Literal["process", "thread"] = "process"
    media_decode_memory_bytes: int = 4 * 1024**3
    media_decode_timeout_s: float = 60.0  # one decode job's time limit (a video's frames), 0: none
    # Fetching http(s) media: time-outs, redirects, and trusted hosts/networks the SSRF guard lets through.
    media_fetch_allow: list[str] = msgspec.field(default_factory=list)
    media_fetch_connect_timeout_s: float = 3.0
    media_fetch_timeout_s: float = 15.0
    media_fetch_max_redirects: int = 3
    # How checked media reaches the engine: local files (file://) or base64 data URIs; auto: files when
    # the gateway spawned the engine on this machine (measured faster, benchmarks/README.md).
    media_handoff: Literal["auto", "file", "data"] = "auto"
    # Scaling out (README "Scaling out"). The model store: a folder (default DATA_DIR/store) or a bucket,
    # s3://bucket/prefix, with endpoint and credentials from the usual AWS_* variables.
    store_url: str | None = None
    # Training runs: child processes of the gateway ("local") or Ray jobs ("ray", at ray_address: the
    # dashboard's URL, e.g. http://head:8265) with the resources each asks Ray for; how many one gateway
    # runs at once (0: no limit); the job lease (renewed every third of it; when a gateway dies, another
    # takes its jobs over once the lease has expired).
    training_backend: Literal["local", "ray"] = "local"
    training_max_jobs: int = 0
    job_lease_ttl_s: float = 30.0
    ray_address: str | None = None
    ray_num_gpus: float = 1.0
    ray_num_cpus: float = 1.0
    ray_memory_bytes: int = 0
    ray_python: str = "python"
    ray_worker_cache_dir: str = "/tmp/vlmgw-store-cache"
    # How engines get trained adapters: "path" (the gateway hands vLLM a folder on this machine) or
    # "store" (engines on other hosts resolve adapter names from the store: vlm-gateway's vLLM plugin).
    engine_adapter_source: Literal["path", "store"] = "path"
    # vlm.run's predictions API (/v1/image/generate, README "Predictions"): batch jobs run at most
    # `predictions_concurrency` at a time per gateway, each claimed for `predictions_lease_s` seconds
    # (renewed while it runs); callbacks are retried with doubling back-off. `predictions_domains_dir`
    # adds domain files (JSON) to the built-in ones.
    predictions_concurrency: int = 2
    predictions_lease_s: float = 60.0
    predictions_poll_interval_s: float = 2.0
    predictions_max_attempts: int = 5
    predictions_retry_delay_s: float = 10.0  # a batch job waits this long when no engine is available
    predictions_domains_dir: Path | None = None
    callback_max_attempts: int = 5
    callback_backoff_s: float = 2.0
    callback_timeout_s: float = 10.0
    # Exports of trained models (README "Take the model home"): how long a finished archive is kept before
    # it is deleted, and how many conversions one gateway runs at once (each loads the whole model).
    export_ttl_s: float = 24 * 3600.0
    export_concurrency: int = 1

    def replace(self, **changes: Any) -> Settings:
        return msgspec.structs.replace(self, **changes)

    @property
    def engine_name(self) -> str:
        """The name the spawned engine serves its base model under (what clients put in `model`)."""
        if self.served_model_name:
            return self.served_model_name
        if self.model is None:
            raise ValueError("no model configured")
        path = Path(self.model)
        return path.name if path.exists() else self.model

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def store_dir(self) -> Path:
        """Where stored files (images, adapters) live: the model store's root."""
        return self.data_dir / "store"

    @property
    def store_location(self) -> str:
        """The model store's URL, or its folder (``DATA_DIR/store``) by default."""
        return self.store_url or str(self.store_dir)

    @property
    def store_cache_dir(self) -> Path:
        """This gateway's local copy of files from a remote store (what vLLM and trainers read)."""
        return self.data_dir / "cache" / "store"

    @property
    def db_url(self) -> str:
        """The database URL: ``database_url`` if set, else a SQLite file in the data directory."""
        return self.database_url or f"sqlite://{self.data_dir / 'vlmgw.sqlite3'}"

    @property
    def media_handoff_dir(self) -> Path:
        """Where checked media is written for a local engine to read (``--allowed-local-media-path``)."""
        return self.data_dir / "media-handoff"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, overridden by ``VLMGW_*`` variables, overridden by ``overrides`` that are not None."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name in cls.__struct_fields__:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = _parse_env_value(name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            settings = msgspec.convert(values, cls, strict=False, dec_hook=_dec_hook)
        except msgspec.ValidationError as exc:
            raise ValueError(f"invalid setting: {exc}") from exc
        if settings.training_backend == "ray" and not settings.ray_address:
            raise ValueError("invalid setting: training_backend ray needs ray_address (http://HEAD:8265)")
        if settings.structured_backend not in STRUCTURED_BACKENDS:
            allowed = ", ".join(STRUCTURED_BACKENDS)
            raise ValueError(f"invalid setting: structured_backend must be one of {allowed}")
        return settings


def _dec_hook(target: type, value: Any) -> Any:
    if target is Path and isinstance(value, str | os.PathLike):
        return Path(value).expanduser()
    raise NotImplementedError(f"cannot convert {type(value).__name__} to {target}")


def _parse_env_value(name: str, raw: str) -> Any:
    if name == "engine_args":
        return shlex.split(raw)
    field_type = Settings.__annotations__.get(name, "")
    if isinstance(field_type, str) and field_type.startswith("list["):
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw
