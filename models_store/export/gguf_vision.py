"""Qwen2-VL's vision encoder and merger as the ``clip`` GGUF (projector ``qwen2vl_merger``) that llama.cpp's
multimodal tools take with ``--mmproj``.

Conversions llama.cpp's loader (``tools/mtmd/clip.cpp``) expects: the fused ``attn.qkv`` is split into
``attn_q``/``attn_k``/``attn_v``; the 3-D patch convolution (2 frames) is split into two 2-D kernels,
``v.patch_embd.weight`` and ``v.patch_embd.weight.1`` (the sum of both is the still-image embedding); the
merger's layer norm is ``v.post_ln`` and its two linear layers ``mm.0`` and ``mm.2``. Metadata: image size,
patch size, widths, depth, heads, layer-norm epsilon, normalisation mean/std of the image processor, the
spatial merge size and the text model's width as the projection size.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from models_store.export.gguf_common import Report, file_type, new_writer, tensor_name, to_array, write_file
from models_store.export.gguf_text import text_config
from models_store.export.source import ExportError, ExportSource, read_json
from models_store.export.tensors import CheckpointTensors

ARCH = gguf.MODEL_ARCH.MMPROJ
T = gguf.MODEL_TENSOR
BLOCK_TENSORS: dict[str, gguf.MODEL_TENSOR] = {
    "norm1": T.V_ENC_INPUT_NORM,
    "norm2": T.V_ENC_POST_ATTN_NORM,
    "attn.proj": T.V_ENC_ATTN_O,
    "mlp.fc1": T.V_ENC_FFN_UP,
    "mlp.fc2": T.V_ENC_FFN_DOWN,
}
QKV = (T.V_ENC_ATTN_Q, T.V_ENC_ATTN_K, T.V_ENC_ATTN_V)
LAYER_NORM_EPS = 1e-6  # Qwen2-VL's vision blocks and merger use LayerNorm(eps=1e-6)
DEFAULT_IMAGE_SIZE = 560  # llama.cpp's converter default; Qwen2-VL images are resized dynamically anyway


def write_vision_projector(
    path: Path,
    source: ExportSource,
    config: dict[str, Any],
    tensors: CheckpointTensors,
    gguf_type: str,
    report: Report,
) -> None:
    vision = config.get("vision_config") or {}
    writer = new_writer(path, gguf.MODEL_ARCH_NAMES[ARCH])
    writer.add_type(gguf.GGUFType.MMPROJ)
    writer.add_name(source.name)
    writer.add_file_type(file_type(gguf_type))
    writer.add_clip_has_vision_encoder(True)
    writer.add_clip_projector_type(gguf.VisionProjectorType.QWEN2VL)
    add_vision_hyperparameters(writer, vision, tensors, int(text_config(config)["hidden_size"]))
    add_image_normalisation(writer, source.base_dir)
    write_file(writer, vision_tensors(tensors, int(vision["depth"]), gguf_type), report)


def add_vision_hyperparameters(
    writer: gguf.GGUFWriter, vision: dict[str, Any], tensors: CheckpointTensors, text_width: int
) -> None:
    embed = int(vision.get("embed_dim") or vision["hidden_size"])
    writer.add_vision_projection_dim(text_width)
    writer.add_vision_image_size(int(vision.get("image_size", DEFAULT_IMAGE_SIZE)))
    writer.add_vision_patch_size(int(vision["patch_size"]))
    writer.add_vision_embedding_length(embed)
    writer.add_vision_feed_forward_length(int(embed * vision.get("mlp_ratio", 4)))
    writer.add_vision_block_count(int(vision["depth"]))
    writer.add_vision_head_count(int(vision["num_heads"]))
    writer.add_vision_attention_layernorm_eps(LAYER_NORM_EPS)
    writer.add_vision_spatial_merge_size(int(vision.get("spatial_merge_size", 2)))
    activation = vision.get("hidden_act", "quick_gelu")
    if activation == "gelu":
        writer.add_vision_use_gelu(True)
    elif activation == "silu":
        writer.add_vision_use_silu(True)  # quick_gelu is llama.cpp's default for this projector


def add_image_normalisation(writer: gguf.GGUFWriter, base_dir: Path) -> None:
    """Mean and std of the image processor (preprocessor_config.json, or processor_config.json's part)."""
    settings: dict[str, Any] = {}
    for name in ("preprocessor_config.json", "processor_config.json"):
        if (base_dir / name).is_file():
            data = read_json(base_dir / name)
            settings = {**settings, **data, **(data.get("image_processor") or {})}
    if "image_mean" not in settings or "image_std" not in settings:
        raise ExportError("the base model's image processor config has no image_mean/image_std")
    writer.add_vision_image_mean([float(x) for x in settings["image_mean"]])
    writer.add_vision_image_std([float(x) for x in settings["image_std"]])


def vision_tensors(
    tensors: CheckpointTensors, depth: int, gguf_type: str
) -> Iterator[tuple[str, np.ndarray[Any, Any]]]:
    patch = tensors.take("visual.patch_embed.proj.weight")  # [embed, 3, 2 frames, p, p]
    if patch.ndim != 5 or patch.shape[2] != 2:
        raise ExportError(f"unexpected patch embedding shape {tuple(patch.shape)} (needs 2 frames)")
    yield tensor_name(ARCH, T.V_ENC_EMBD_PATCH, "weight"), to_array(patch[:, :, 0], gguf_type)
    yield tensor_name(ARCH, T.V_ENC_EMBD_PATCH, "weight.1"), to_array(patch[:, :, 1], gguf_type)
    for block in range(depth):
        prefix = f"visual.blocks.{block}."
        for part in ("weight", "bias"):
            qkv = tensors.take(f"{prefix}attn.qkv.{part}")
            for kind, piece in zip(QKV, qkv.chunk(3, dim=0), strict=True):
                yield tensor_name(ARCH, kind, part, block), to_array(piece, gguf_type)
            for source, kind in BLOCK_TENSORS.items():
                yield (
                    tensor_name(ARCH, kind, part, block),
                    to_array(tensors.take(f"{prefix}{source}.{part}"), gguf_type),
                )
    for part in ("weight", "bias"):
        yield (
            tensor_name(ARCH, T.V_POST_NORM, part),
            to_array(tensors.take(f"visual.merger.ln_q.{part}"), gguf_type),
        )
        for index in (0, 2):
            yield (
                tensor_name(ARCH, T.V_MMPROJ, part, index),
                to_array(tensors.take(f"visual.merger.mlp.{index}.{part}"), gguf_type),
            )
