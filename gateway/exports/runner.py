"""Run one export as a child process (``python -m models_store.export run ...``) and follow its progress.

The conversion loads a whole model with torch; in a child, an out-of-memory or a crash costs the export,
never the gateway. The child writes JSON lines on stdout (``models_store.export.events``); this module
parses them for the caller and keeps everything (stderr too) in the export's log file. The child runs in
its own process group, dies with the gateway (``PR_SET_PDEATHSIG``), and is killed with its group when the
export is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import msgspec

from adapters.processes import die_with_parent, kill_group, track_group


class ExportEvent(msgspec.Struct, kw_only=True):
    """One progress line of the exporter (fields it does not know are ignored)."""

    event: str
    stage: str | None = None
    progress: float | None = None
    message: str | None = None
    refused: bool = False
    archive: str | None = None
    sha256: str | None = None
    archive_bytes: int | None = None
    files: list[str] = msgspec.field(default_factory=list)


def parse_event(line: bytes) -> ExportEvent | None:
    """A progress line as an event; None for anything else (it only goes to the log)."""
    try:
        return msgspec.json.decode(line, type=ExportEvent, strict=False)
    except msgspec.DecodeError:
        return None


@dataclass
class ExportOutcome:
    """How the child ended: ``done`` carries the archive's details; otherwise ``error`` says why."""

    done: ExportEvent | None
    error: str | None = None
    refused: bool = False


OnEvent = Callable[[ExportEvent], Awaitable[None]]


async def run_export(command: list[str], log_path: Path, on_event: OnEvent) -> ExportOutcome:
    """Start the child, relay its events until it exits, and classify the end. Cancelling this coroutine
    kills the child's process group before the cancellation goes on."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=log,
            start_new_session=True, preexec_fn=die_with_parent,
        )  # fmt: skip
        track_group(proc.pid)
        try:
            return await _follow(proc, log, on_event, log_path)
        finally:
            kill_group(proc.pid, signal.SIGKILL)  # the child and anything it forked
            with contextlib.suppress(ProcessLookupError):
                await proc.wait()


async def _follow(
    proc: asyncio.subprocess.Process, log: BinaryIO, on_event: OnEvent, log_path: Path
) -> ExportOutcome:
    assert proc.stdout is not None
    done: ExportEvent | None = None
    error: ExportEvent | None = None
    while line := await proc.stdout.readline():
        log.write(line)
        event = parse_event(line)
        if event is None:
            continue
        if event.event == "done":
            done = event
        elif event.event == "error":
            error = event
        await on_event(event)
    code = await proc.wait()
    if code == 0 and done is not None:
        return ExportOutcome(done=done)
    if error is not None and error.message:
        return ExportOutcome(done=None, error=error.message, refused=error.refused)
    return ExportOutcome(done=None, error=_describe_exit(code, log_path))


def _describe_exit(code: int, log_path: Path) -> str:
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"the exporter was killed by {name}{hint}"
    return f"the exporter exited with code {code} without a result (log: {log_path.name})"
