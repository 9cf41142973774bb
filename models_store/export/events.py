"""Progress of an export: JSON lines for the gateway that follows the child, one readable line for people.

Events (one JSON object per line, each with ``event`` and ``time``): ``start`` (format, model), ``progress``
(stage, progress 0-1 over the whole export, message), ``done`` (path, files, bytes; with an archive also
archive, sha256, archive_bytes) and ``error`` (message, refused: true when the format cannot be made for this
model). ``gateway.exports.runner`` parses them; ``vlmgw export`` shows only the readable lines.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import IO, Any

import msgspec

_encode = msgspec.json.Encoder().encode


class ExportProgress:
    """Events as JSON lines to ``out``, and a short readable line per event to ``human`` (both optional)."""

    def __init__(self, out: IO[str] | None = None, human: IO[str] | None = None) -> None:
        self.out = out
        self.human = human
        self.events: list[dict[str, Any]] = []  # everything emitted, for in-process callers and tests
        self._weights: dict[str, tuple[float, float]] = {}  # stage -> (start, share) of the whole export
        self._last = -1.0

    def emit(self, event: str, **fields: Any) -> None:
        record = {"event": event, "time": round(time.time(), 3), **fields}
        self.events.append(record)
        if self.out is not None:
            self.out.write(_encode(record).decode() + "\n")
            self.out.flush()

    def say(self, text: str) -> None:
        if self.human is not None:
            self.human.write(f"[export {time.strftime('%H:%M:%S')}] {text}\n")
            self.human.flush()

    def plan(self, stages: Sequence[tuple[str, float]]) -> None:
        """The export's stages with their relative cost, so ``stage`` can report progress over the whole."""
        total = sum(weight for _, weight in stages) or 1.0
        start = 0.0
        for name, weight in stages:
            self._weights[name] = (start, weight / total)
            start += weight / total

    def stage(self, name: str, message: str, fraction: float = 0.0) -> None:
        """Report ``fraction`` (0-1) of stage ``name`` done; small steps (< 2 %) are not reported."""
        start, share = self._weights.get(name, (max(self._last, 0.0), 0.0))
        overall = round(min(1.0, start + share * max(0.0, min(1.0, fraction))), 4)
        if overall - self._last < 0.02 and fraction not in (0.0, 1.0):
            return
        self._last = overall
        self.emit("progress", stage=name, progress=overall, message=message)
        if fraction == 0.0:
            self.say(message)

    def start(self, *, fmt: str, model: str) -> None:
        self.emit("start", format=fmt, model=model)
        self.say(f"exporting {model} as {fmt}")

    def done(self, **fields: Any) -> None:
        self.emit("done", **fields)
        self.say(f"done: {fields.get('archive') or fields.get('path')}")

    def error(self, message: str, *, refused: bool = False) -> None:
        self.emit("error", message=message, refused=refused)
        self.say(f"error: {message}")


def stderr_progress() -> ExportProgress:
    """Readable lines on stderr only (``vlmgw export``)."""
    return ExportProgress(out=None, human=sys.stderr)
