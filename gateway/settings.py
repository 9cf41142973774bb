"""Typed settings: defaults, then ``VLMGW_*`` environment variables, then command-line flags.

Every field can be set from the environment as ``VLMGW_<FIELD>`` (e.g. ``VLMGW_PORT=9000``). List fields take
comma-separated values, except ``engine_args`` which is split like a shell command line.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

ENV_PREFIX = "VLMGW_"


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
    max_body_bytes: int = 64 * 1024 * 1024
    log_level: str = "info"
    access_log: bool = False

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
            return msgspec.convert(values, cls, strict=False, dec_hook=_dec_hook)
        except msgspec.ValidationError as exc:
            raise ValueError(f"invalid setting: {exc}") from exc


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
