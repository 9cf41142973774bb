"""The tensors of a saved Hugging Face checkpoint (one or several safetensors files), by stable name.

Names are normalised to the classic Qwen2-VL checkpoint layout (``model.layers.N...``, ``visual...``,
``lm_head...``) whichever layout transformers wrote. The converter takes each tensor it writes; at the end
``check_all_used`` fails if a tensor was never taken, so no weight is dropped silently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models_store.export.source import ExportError

# Newer transformers layouts -> the classic checkpoint names the GGUF mapping is written against.
_PREFIXES = (
    ("model.language_model.", "model."),
    ("language_model.model.", "model."),
    ("language_model.lm_head.", "lm_head."),
    ("model.visual.", "visual."),
)


def normalise(name: str) -> str:
    for old, new in _PREFIXES:
        if name.startswith(old):
            return new + name[len(old) :]
    return name


class CheckpointTensors:
    def __init__(self, folder: Path) -> None:
        index = folder / "model.safetensors.index.json"
        if index.is_file():
            weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
            files = sorted(set(weight_map.values()))
        else:
            files = ["model.safetensors"]
        self._where: dict[str, tuple[Path, str]] = {}
        for file in files:
            from safetensors import safe_open

            with safe_open(str(folder / file), framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 - safe_open handles are not iterable
                    self._where[normalise(key)] = (folder / file, key)
        self._used: set[str] = set()

    def names(self) -> list[str]:
        return sorted(self._where)

    def has(self, name: str) -> bool:
        return name in self._where

    def take(self, name: str) -> Any:
        """The tensor (torch, as stored) and mark it converted."""
        if name not in self._where:
            raise ExportError(f"the merged checkpoint has no tensor `{name}`")
        from safetensors import safe_open

        path, key = self._where[name]
        with safe_open(str(path), framework="pt") as f:
            tensor = f.get_tensor(key)
        self._used.add(name)
        return tensor

    def skip(self, name: str) -> None:
        """Mark a tensor deliberately not written (e.g. ``lm_head`` tied to the embeddings)."""
        self._used.add(name)

    def check_all_used(self) -> None:
        left = sorted(set(self._where) - self._used)
        if left:
            shown = ", ".join(f"`{n}`" for n in left[:5])
            raise ExportError(f"{len(left)} tensors have no place in llama.cpp's Qwen2-VL format: {shown}")
