"""Write an export atomically: into a hidden temporary sibling, renamed into place only when complete.

``export_folder`` makes the folder ``vlmgw export`` leaves on disk; ``export_archive`` (what the gateway's
child process runs) makes the folder in a scratch place, packs it into a tar with its SHA-256, and removes
the folder. Either way a failure removes everything it wrote: a reader finds the complete export or none.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

from models_store.export.archive import folder_files, tar_folder, write_archive_checksum, write_checksums
from models_store.export.events import ExportProgress
from models_store.export.source import ExportError, ExportSource, check_format


def export_folder(
    source: ExportSource,
    fmt: str,
    out: Path,
    progress: ExportProgress,
    *,
    gguf_type: str = "f16",
    archive_next: bool = False,
) -> list[str]:
    """Write the ``fmt`` export of ``source`` as the folder ``out`` (absent or empty); its file names.

    ``archive_next``: an archive stage follows (``export_archive``), so progress leaves room for it.
    """  # fmt: skip
    check_format(fmt, source, gguf_type)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not an empty directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _write(source, fmt, tmp, progress, gguf_type, archive_next)
        os.replace(tmp, out)  # an empty directory at ``out`` is replaced too
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [p.as_posix() for p in folder_files(out)]


def export_archive(
    source: ExportSource, fmt: str, archive: Path, progress: ExportProgress, *, gguf_type: str = "f16"
) -> dict[str, Any]:
    """Write the export as the tar ``archive`` plus ``<archive>.sha256``; what the ``done`` event reports.

    The folder is built next to the archive (same file system, so nothing is copied twice) and removed
    once packed. The caller owns the archive's directory and removes it if this raises.
    """
    root = f"{source.file_stem}-{fmt}"
    folder = archive.parent / f".{root}"
    files = export_folder(source, fmt, folder, progress, gguf_type=gguf_type, archive_next=True)
    try:
        progress.stage("archive", f"packing {archive.name}")
        packed = lambda i, n: progress.stage("archive", "packing", i / n)  # noqa: E731
        sha256, size = tar_folder(folder, archive, root, packed)
        write_archive_checksum(archive, sha256)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"archive": str(archive), "sha256": sha256, "archive_bytes": size, "files": files}


def _write(
    source: ExportSource, fmt: str, dest: Path, progress: ExportProgress, gguf_type: str, archive_next: bool
) -> None:
    from models_store.export.formats import PLANS, WRITERS

    progress.plan([*PLANS[fmt], *([("archive", 2.0)] if archive_next else [])])
    progress.start(fmt=fmt, model=source.name)
    WRITERS[fmt](source, dest, progress, gguf_type)
    (dest / "export.json").write_text(json.dumps(describe(source, fmt, gguf_type), indent=2) + "\n")
    progress.stage("checksums", "writing SHA256SUMS")
    write_checksums(dest)
    progress.stage("checksums", "checksums written", 1.0)


def describe(source: ExportSource, fmt: str, gguf_type: str) -> dict[str, Any]:
    """``export.json``: what was exported, from what, by which versions of the tools."""
    config = source.base_config()
    info: dict[str, Any] = {
        "model": source.name,
        "format": fmt,
        "base_model": source.base_dir.name,
        "base_model_type": config.get("model_type"),
        "architectures": config.get("architectures"),
        "adapter": source.adapter_config().get("peft_type", "LORA"),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "tools": {name: _version(name) for name in ("vlm-gateway", "transformers", "peft", "torch", "gguf")},
    }
    if fmt == "gguf":
        info["gguf_type"] = gguf_type
    return info


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
