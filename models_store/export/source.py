"""What an export starts from: a PEFT adapter directory and the base model directory it was trained on.

Every kind of trained model (a platform task version, an OpenAI-API fine-tuned model) is such a pair, so
one exporter serves them all. Nothing here imports torch: the gateway checks requests with it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMATS = ("adapter", "merged", "gguf", "pt")
GGUF_TYPES = ("f16", "f32")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_RUNS = re.compile(r"[-.]{2,}")


class ExportError(Exception):
    """The export cannot be made from these inputs (missing files, an adapter that does not fit the base)."""


class ExportRefused(ExportError):
    """The format cannot be made for this model at all (e.g. GGUF of an architecture llama.cpp lacks)."""


@dataclass(frozen=True)
class ExportSource:
    """A trained model to export: its adapter, its base model, and the name its files are given."""

    adapter_dir: Path
    base_dir: Path
    name: str

    @property
    def file_stem(self) -> str:
        """``name`` made safe for file names (``ft:tiny:acme::x1`` -> ``ft-tiny-acme-x1``)."""
        return _RUNS.sub("-", _SAFE_NAME.sub("-", self.name)).strip("-.") or "model"

    def check(self) -> None:
        """Refuse inputs that cannot be exported before any heavy work starts."""
        for required in ("adapter_config.json", "adapter_model.safetensors"):
            if not (self.adapter_dir / required).is_file():
                raise ExportError(f"the adapter directory {self.adapter_dir} has no {required}")
        if not (self.base_dir / "config.json").is_file():
            raise ExportError(f"the base model directory {self.base_dir} has no config.json")

    def base_config(self) -> dict[str, Any]:
        return read_json(self.base_dir / "config.json")

    def adapter_config(self) -> dict[str, Any]:
        return read_json(self.adapter_dir / "adapter_config.json")


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path} is not a JSON object")
    return data


def check_format(fmt: str, source: ExportSource, gguf_type: str = "f16") -> None:
    """Raise ``ExportError`` / ``ExportRefused`` when ``fmt`` cannot be made from ``source`` (no torch)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format `{fmt}`; one of: {', '.join(FORMATS)}")
    if gguf_type not in GGUF_TYPES:
        raise ExportError(f"unknown GGUF type `{gguf_type}`; one of: {', '.join(GGUF_TYPES)}")
    source.check()
    if fmt == "gguf":
        from models_store.export.gguf_support import gguf_refusal

        reason = gguf_refusal(source.base_dir)
        if reason is not None:
            raise ExportRefused(reason)
