"""The Qwen2-VL language model as a GGUF file of llama.cpp's ``qwen2vl`` architecture.

Metadata keys and tensor names are the ``gguf`` package's (the tables llama.cpp reads): the usual Qwen2
hyper-parameters plus ``qwen2vl.rope.dimension_sections`` (M-RoPE's temporal/height/width split, padded to
four), the byte-level BPE vocabulary with its merges and special tokens, and the chat template. Q/K are not
permuted (llama.cpp applies Qwen2's NeoX-style rotary embedding to the HF layout as it is). A tied
``lm_head`` is left out: llama.cpp then uses ``token_embd`` as the output matrix.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from models_store.export.gguf_common import Report, file_type, new_writer, tensor_name, to_array, write_file
from models_store.export.gguf_vocab import add_vocabulary
from models_store.export.source import ExportError, ExportSource
from models_store.export.tensors import CheckpointTensors

ARCH = gguf.MODEL_ARCH.QWEN2VL
T = gguf.MODEL_TENSOR
# Per-layer tensors: checkpoint name under ``model.layers.N.`` -> (llama.cpp tensor, suffix).
_QKV = (("q", T.ATTN_Q), ("k", T.ATTN_K), ("v", T.ATTN_V))
_MLP = (("gate", T.FFN_GATE), ("up", T.FFN_UP), ("down", T.FFN_DOWN))
LAYER_TENSORS: dict[str, tuple[gguf.MODEL_TENSOR, str]] = {
    "input_layernorm.weight": (T.ATTN_NORM, "weight"),
    # Qwen2's Q, K and V projections have a bias; the output projection and the MLP have none
    **{f"self_attn.{p}_proj.{part}": (t, part) for p, t in _QKV for part in ("weight", "bias")},
    "self_attn.o_proj.weight": (T.ATTN_OUT, "weight"),
    "post_attention_layernorm.weight": (T.FFN_NORM, "weight"),
    **{f"mlp.{p}_proj.weight": (t, "weight") for p, t in _MLP},
}


def text_config(config: dict[str, Any]) -> dict[str, Any]:
    """The language model's settings: ``text_config`` (transformers 5) over the top level (older files)."""
    return {**config, **(config.get("text_config") or {})}


def write_language_model(
    path: Path, source: ExportSource, config: dict[str, Any], tensors: CheckpointTensors, gguf_type: str,
    report: Report,
) -> None:  # fmt: skip
    text = text_config(config)
    writer = new_writer(path, gguf.MODEL_ARCH_NAMES[ARCH])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(source.name)
    writer.add_file_type(file_type(gguf_type))
    add_hyperparameters(writer, text)
    add_vocabulary(writer, source.base_dir, text)
    write_file(writer, language_tensors(tensors, text, gguf_type), report)


def add_hyperparameters(writer: gguf.GGUFWriter, text: dict[str, Any]) -> None:
    rope = text.get("rope_parameters") or text.get("rope_scaling") or {}
    sections = list(rope.get("mrope_section") or [])
    if not sections:
        raise ExportError("the model's config has no mrope_section (Qwen2-VL's M-RoPE split)")
    writer.add_block_count(int(text["num_hidden_layers"]))
    writer.add_context_length(int(text.get("max_position_embeddings", 32768)))
    writer.add_embedding_length(int(text["hidden_size"]))
    writer.add_feed_forward_length(int(text["intermediate_size"]))
    writer.add_head_count(int(text["num_attention_heads"]))
    writer.add_head_count_kv(int(text.get("num_key_value_heads", text["num_attention_heads"])))
    writer.add_rope_freq_base(float(rope.get("rope_theta", text.get("rope_theta", 1_000_000.0))))
    writer.add_rope_dimension_sections([*sections, 0, 0, 0, 0][:4])
    writer.add_layer_norm_rms_eps(float(text.get("rms_norm_eps", 1e-6)))


def language_tensors(
    tensors: CheckpointTensors, text: dict[str, Any], gguf_type: str
) -> Iterator[tuple[str, np.ndarray[Any, Any]]]:
    yield (
        tensor_name(ARCH, T.TOKEN_EMBD, "weight"),
        to_array(tensors.take("model.embed_tokens.weight"), gguf_type),
    )
    yield tensor_name(ARCH, T.OUTPUT_NORM, "weight"), to_array(tensors.take("model.norm.weight"), gguf_type)
    if tensors.has("lm_head.weight"):
        if text.get("tie_word_embeddings"):
            tensors.skip("lm_head.weight")
        else:
            yield tensor_name(ARCH, T.OUTPUT, "weight"), to_array(tensors.take("lm_head.weight"), gguf_type)
    for block in range(int(text["num_hidden_layers"])):
        for suffix, (kind, part) in LAYER_TENSORS.items():
            name = f"model.layers.{block}.{suffix}"
            if part == "bias" and not tensors.has(name):
                continue  # Qwen2 has q/k/v biases; a variant without them still loads
            yield tensor_name(ARCH, kind, part, block), to_array(tensors.take(name), gguf_type)
