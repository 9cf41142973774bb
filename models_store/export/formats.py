"""The four export formats, each written into an empty folder: ``adapter``, ``merged``, ``pt`` and ``gguf``.

Each writer fills ``dest`` (which the caller renames into place when everything is written) and reports its
stages through ``ExportProgress``. torch, transformers and peft are imported inside the writers that merge.
"""

from __future__ import annotations

import gc
import shutil
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from models_store.export import notes
from models_store.export.events import ExportProgress
from models_store.export.merge import load_merged, load_processor, saved_dtype
from models_store.export.source import ExportSource

Writer = Callable[[ExportSource, Path, ExportProgress, str], None]

# Relative cost of each format's stages, for progress over the whole export.
PLANS: dict[str, list[tuple[str, float]]] = {
    "adapter": [("copy", 1.0), ("checksums", 0.2)],
    "merged": [("load", 3.0), ("save", 5.0), ("checksums", 1.0)],
    "pt": [("load", 3.0), ("save", 5.0), ("checksums", 1.0)],
    "gguf": [
        ("load", 3.0),
        ("save", 3.0),
        ("language model", 4.0),
        ("vision projector", 1.0),
        ("checksums", 1.0),
    ],
}


def _note(template: str, source: ExportSource, **extra: Any) -> str:
    served = source.adapter_config().get("base_model_name_or_path") or source.base_dir.name
    return template.format(
        name=source.name, stem=source.file_stem, base=source.base_dir.name, served=served, **extra
    )


def write_adapter(source: ExportSource, dest: Path, progress: ExportProgress, _gguf_type: str) -> None:
    """The adapter's files as they are (safetensors + config, and any tokenizer files saved with it)."""
    progress.stage("copy", "copying the adapter")
    files = [p for p in sorted(source.adapter_dir.iterdir()) if p.is_file() and p.name != "README.md"]
    for i, path in enumerate(files, 1):
        shutil.copy2(path, dest / path.name)
        progress.stage("copy", "copying the adapter", i / len(files))
    (dest / "README.md").write_text(_note(notes.ADAPTER, source))


def _merged(source: ExportSource, progress: ExportProgress) -> Any:
    progress.stage("load", "loading the base model and merging the adapter into it")
    model = load_merged(source)
    progress.stage("load", "merged", 1.0)
    return model


def write_merged(source: ExportSource, dest: Path, progress: ExportProgress, _gguf_type: str) -> None:
    """A complete Hugging Face model folder: merged safetensors, config, processor and chat template."""
    model = _merged(source, progress)
    progress.stage("save", "writing the merged safetensors")
    model.save_pretrained(str(dest), safe_serialization=True, max_shard_size="5GB")
    load_processor(source).save_pretrained(str(dest))
    dtype = saved_dtype(source.base_config())
    (dest / "README.md").write_text(_note(notes.MERGED, source, dtype=dtype))
    progress.stage("save", "merged model written", 1.0)


def write_pt(source: ExportSource, dest: Path, progress: ExportProgress, _gguf_type: str) -> None:
    """``torch.save`` of the merged state dict, with the config and processor files a loader needs."""
    import torch

    model = _merged(source, progress)
    progress.stage("save", "writing model.pt")
    torch.save(model.state_dict(), dest / "model.pt")
    model.config.save_pretrained(str(dest))
    if model.generation_config is not None:
        model.generation_config.save_pretrained(str(dest))
    load_processor(source).save_pretrained(str(dest))
    dtype = saved_dtype(source.base_config())
    note = _note(notes.PT, source, dtype=dtype, transformers=metadata.version("transformers"))
    (dest / "README.md").write_text(note)
    progress.stage("save", "model.pt written", 1.0)


def write_gguf(source: ExportSource, dest: Path, progress: ExportProgress, gguf_type: str) -> None:
    """The merged language model and its vision projector as two GGUF files for llama.cpp.

    The merged model is saved to a scratch folder first and read back from its safetensors, so the
    converter sees the checkpoint's stable tensor names rather than the loaded model's module layout.
    """
    from models_store.export.gguf_text import write_language_model
    from models_store.export.gguf_vision import write_vision_projector
    from models_store.export.tensors import CheckpointTensors

    model = _merged(source, progress)
    with tempfile.TemporaryDirectory(prefix=".merged-", dir=dest.parent) as scratch:
        progress.stage("save", "writing the merged weights for conversion")
        model.save_pretrained(scratch, safe_serialization=True)
        del model
        gc.collect()
        progress.stage("save", "merged weights written", 1.0)
        tensors = CheckpointTensors(Path(scratch))
        config = source.base_config()

        def report(stage: str) -> Callable[[int, int], None]:
            return lambda i, n: progress.stage(stage, f"converting the {stage}", i / n)

        write_language_model(
            dest / f"{source.file_stem}.gguf", source, config, tensors, gguf_type, report("language model")
        )
        write_vision_projector(
            dest / f"mmproj-{source.file_stem}.gguf",
            source,
            config,
            tensors,
            gguf_type,
            report("vision projector"),
        )
        tensors.check_all_used()
    (dest / "README.md").write_text(_note(notes.GGUF, source, gguf_type=gguf_type.upper()))


WRITERS: dict[str, Writer] = {
    "adapter": write_adapter,
    "merged": write_merged,
    "pt": write_pt,
    "gguf": write_gguf,
}
