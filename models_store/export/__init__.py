"""Take a trained model home: export an adapter version as the ``adapter``, a ``merged`` Hugging Face model,
``gguf`` files for llama.cpp, or a ``pt`` state dict.

An export starts from a PEFT adapter directory and its base model's directory (``ExportSource``), so every
kind of trained model exports the same way. Importing this package imports no torch (the gateway checks
requests with it); the conversions import torch, transformers, peft and gguf inside their functions, and the
gateway runs them in a child process (``python -m models_store.export``).
"""

from models_store.export.events import ExportProgress, stderr_progress
from models_store.export.source import (
    FORMATS,
    GGUF_TYPES,
    ExportError,
    ExportRefused,
    ExportSource,
    check_format,
)

__all__ = [
    "FORMATS",
    "GGUF_TYPES",
    "ExportError",
    "ExportProgress",
    "ExportRefused",
    "ExportSource",
    "check_format",
    "stderr_progress",
]
