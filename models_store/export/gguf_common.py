"""What both GGUF files share: tensor names from the ``gguf`` package's tables, dtypes, and writing."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from models_store.export.source import ExportError

Report = Callable[[int, int], None]


def tensor_name(arch: gguf.MODEL_ARCH, kind: gguf.MODEL_TENSOR, suffix: str, block: int | None = None) -> str:
    """llama.cpp's name of a tensor (e.g. ``blk.3.attn_q.weight``), checked against the architecture."""
    if kind not in gguf.MODEL_TENSORS[arch]:
        raise ExportError(f"llama.cpp's `{gguf.MODEL_ARCH_NAMES[arch]}` has no tensor {kind.name}")
    base = gguf.TENSOR_NAMES[kind]
    return (base.format(bid=block) if "{bid}" in base else base) + "." + suffix


def to_array(tensor: Any, gguf_type: str) -> np.ndarray[Any, Any]:
    """A torch tensor as the numpy array to store: F16 for matrices when asked, F32 for everything else
    (norms, biases and other 1-D tensors stay F32, as llama.cpp expects)."""
    import torch

    if gguf_type == "f16" and tensor.ndim >= 2:
        return tensor.to(torch.float16).contiguous().numpy()
    return tensor.to(torch.float32).contiguous().numpy()


def file_type(gguf_type: str) -> int:
    return int(gguf.LlamaFileType.MOSTLY_F16 if gguf_type == "f16" else gguf.LlamaFileType.ALL_F32)


def write_file(
    writer: gguf.GGUFWriter, tensors: Iterable[tuple[str, np.ndarray[Any, Any]]], report: Report
) -> None:
    """Add the tensors (reporting each) and write header, metadata and data to the writer's path."""
    items = list(tensors)
    for i, (name, array) in enumerate(items, 1):
        writer.add_tensor(name, array)
        report(i, len(items))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def new_writer(path: Path, arch: str) -> gguf.GGUFWriter:
    return gguf.GGUFWriter(str(path), arch=arch)
