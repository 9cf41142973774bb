"""Which base models this exporter can write as GGUF for llama.cpp, decided from config files alone.

Supported: Qwen2-VL (``model_type`` ``qwen2_vl``), as llama.cpp's ``qwen2vl`` language model plus a ``clip``
vision projector of type ``qwen2vl_merger`` (what ``llama-mtmd-cli --mmproj`` and ``llama-server --mmproj``
read), with a byte-level BPE tokenizer whose pre-tokenizer llama.cpp knows (GPT-2's or Qwen2's). Anything
else is refused with the reason, before any weights are loaded.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

SUPPORTED_MODEL_TYPE = "qwen2_vl"
# Qwen2's pre-tokenizer split (tokenizer.json), which llama.cpp implements as the `qwen2` pre-tokenizer.
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
VISION_ACTIVATIONS = ("quick_gelu", "gelu", "silu")


def gguf_refusal(base_dir: Path) -> str | None:
    """Why this base model cannot be exported as GGUF, or None when it can."""
    if importlib.util.find_spec("gguf") is None:
        return "the `gguf` package is not installed here (install the project's `train` extra)"
    config = json.loads((base_dir / "config.json").read_text())
    model_type = config.get("model_type")
    if model_type != SUPPORTED_MODEL_TYPE:
        return (
            f"GGUF export converts Qwen2-VL models (model_type `{SUPPORTED_MODEL_TYPE}`) to llama.cpp's "
            f"`qwen2vl` architecture and `qwen2vl_merger` projector; this base model is `{model_type}`, "
            "which this exporter does not convert. Export `merged` and convert that folder with llama.cpp's "
            "own tools if they support the architecture."
        )
    vision = config.get("vision_config") or {}
    if vision.get("temporal_patch_size", 2) != 2:
        return "llama.cpp's Qwen2-VL projector needs temporal_patch_size 2 (it splits the patch convolution)"
    if vision.get("hidden_act", "quick_gelu") not in VISION_ACTIVATIONS:
        return f"the vision tower's activation `{vision.get('hidden_act')}` has no llama.cpp equivalent"
    return tokenizer_refusal(base_dir)


def tokenizer_refusal(base_dir: Path) -> str | None:
    path = base_dir / "tokenizer.json"
    if not path.is_file():
        return (
            "the base model has no tokenizer.json (llama.cpp needs the byte-level BPE vocabulary and merges)"
        )
    tokenizer = json.loads(path.read_text())
    if (tokenizer.get("model") or {}).get("type") != "BPE":
        return "the tokenizer is not a BPE tokenizer, which is what llama.cpp's Qwen2-VL support reads"
    if pre_tokenizer_name(tokenizer.get("pre_tokenizer")) is None:
        return (
            "the tokenizer's pre-tokenizer is neither GPT-2's nor Qwen2's byte-level split, so llama.cpp "
            "would split text differently from the model's own tokenizer"
        )
    return None


def pre_tokenizer_name(pre: Any) -> str | None:
    """llama.cpp's name (``tokenizer.ggml.pre``) of a tokenizer.json pre-tokenizer; None if it has none."""
    if not isinstance(pre, dict):
        return None
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True) and not pre.get("add_prefix_space"):
        return "gpt-2"
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else None
    if isinstance(steps, list) and len(steps) == 2:
        split, byte_level = steps
        pattern = (split.get("pattern") or {}).get("Regex") if isinstance(split, dict) else None
        if (
            split.get("type") == "Split"
            and pattern == QWEN2_SPLIT
            and isinstance(byte_level, dict)
            and byte_level.get("type") == "ByteLevel"
            and not byte_level.get("use_regex", True)
        ):
            return "qwen2"
    return None
