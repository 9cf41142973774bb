"""Checksums and archives of export folders, written so that no reader ever sees half a file.

``SHA256SUMS`` inside every export folder lists each file (``sha256sum -c SHA256SUMS`` checks them); the
archive the gateway serves is an uncompressed tar (weights do not compress) whose SHA-256 is computed while
it is written and stored next to it as ``<archive>.sha256``.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

CHECKSUMS = "SHA256SUMS"
CHUNK = 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def folder_files(folder: Path) -> list[Path]:
    """Every regular file under ``folder``, relative to it, sorted (the order of checksums and archives)."""
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


def write_checksums(folder: Path) -> Path:
    """Write ``SHA256SUMS`` (``<hex>  <path>`` per file, as ``sha256sum`` prints) for the folder's files."""
    lines = [
        f"{sha256_file(folder / rel)}  {rel.as_posix()}"
        for rel in folder_files(folder)
        if str(rel) != CHECKSUMS
    ]
    path = folder / CHECKSUMS
    path.write_text("\n".join(lines) + "\n")
    return path


class _HashingWriter:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.target.write(data)


def tar_folder(
    folder: Path, archive: Path, root: str, on_file: Callable[[int, int], None] | None = None
) -> tuple[str, int]:
    """Pack ``folder`` as ``<root>/...`` into the tar ``archive``; (sha256 hex, size in bytes).

    The tar is streamed (``w|``) through a hashing writer, so the checksum costs no second read, then
    flushed to disk. ``on_file(i, n)`` is called after each file.
    """
    files = folder_files(folder)
    with archive.open("wb") as raw:
        writer = _HashingWriter(raw)
        with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            for i, rel in enumerate(files, 1):
                tar.add(folder / rel, arcname=f"{root}/{rel.as_posix()}", recursive=False)
                if on_file is not None:
                    on_file(i, len(files))
        raw.flush()
        os.fsync(raw.fileno())
    return writer.digest.hexdigest(), writer.size


def write_archive_checksum(archive: Path, sha256: str) -> Path:
    """``<archive>.sha256`` in ``sha256sum`` format, next to the archive."""
    path = archive.with_name(archive.name + ".sha256")
    path.write_text(f"{sha256}  {archive.name}\n")
    return path
