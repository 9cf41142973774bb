"""Run one training job as a child process (``python -m finetune run SPEC.json``) and follow its progress.

Training never runs inside the gateway: a crash or an out-of-memory in training must not take the API down.
The child writes one JSON object per line on stdout (``{"event": "step", "step": 10, "loss": ...}``); this
module parses those lines into ``TrainingEvent`` values for the caller (who stores them as job events) and
keeps everything else (stderr, non-JSON output) in the job's log file. The child runs in its own process
group, dies with the gateway (``PR_SET_PDEATHSIG``) and is cancelled with SIGTERM, which the trainer answers
by writing a checkpoint and a ``cancelled`` event; after a grace period the group is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from adapters.processes import die_with_parent, kill_group, track_group

log = logging.getLogger("vlmgw.training")

Outcome = Literal["succeeded", "failed", "cancelled"]


class TrainingEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One progress line of the trainer. Unknown fields are kept in ``data``."""

    event: str
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    lr: float | None = None
    samples_per_s: float | None = None
    eta_s: float | None = None
    message: str | None = None
    adapter_dir: str | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)


_KNOWN = frozenset(TrainingEvent.__struct_fields__)


def parse_event(line: bytes) -> TrainingEvent | None:
    """A progress line as an event, or None when the line is not one (then it only goes to the log)."""
    try:
        raw = msgspec.json.decode(line)
    except msgspec.DecodeError:
        return None
    if not isinstance(raw, dict):
        return None
    kind = raw.get("event", raw.get("type"))
    if not isinstance(kind, str):
        return None
    known = {k: v for k, v in raw.items() if k in _KNOWN and k not in ("event", "data")}
    extra = {k: v for k, v in raw.items() if k not in _KNOWN and k != "type"}
    try:
        return msgspec.convert({"event": kind, **known, "data": extra}, TrainingEvent, strict=False)
    except msgspec.ValidationError:
        return TrainingEvent(event=kind, data=raw)


@dataclass
class JobResult:
    outcome: Outcome
    exit_code: int
    error: str | None = None
    adapter_dir: str | None = None


@dataclass
class TrainerEnd:
    """What a trainer's event lines said about how it ended: its last final event (done, error, cancelled),
    its last error message and the adapter it wrote."""

    event: str | None = None
    error: str | None = None
    adapter_dir: str | None = None

    def note(self, event: TrainingEvent) -> None:
        if event.event in ("done", "error", "cancelled"):
            self.event = event.event
        if event.event == "error" and event.message:
            self.error = event.message
        if event.adapter_dir:
            self.adapter_dir = event.adapter_dir


OnEvent = Callable[[TrainingEvent], Awaitable[None]]


class TrainingProcess:
    """One training child. ``start`` spawns it, ``wait`` follows it to the end, ``cancel`` stops it."""

    def __init__(
        self,
        spec_path: Path,
        *,
        log_path: Path,
        on_event: OnEvent,
        resume: bool = False,
        command: list[str] | None = None,
        cancel_grace_s: float = 60.0,
    ) -> None:
        self.spec_path = spec_path
        self.log_path = log_path
        self.on_event = on_event
        self.command = command or [sys.executable, "-m", "finetune", "run", str(spec_path)]
        if resume and command is None:
            self.command.append("--resume")
        self.cancel_grace_s = cancel_grace_s
        self._proc: asyncio.subprocess.Process | None = None
        self._cancelled = False
        self._end = TrainerEnd()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        stderr = self.log_path.open("ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        finally:
            stderr.close()
        track_group(self._proc.pid)

    async def wait(self) -> JobResult:
        """Relay events until the child exits; classify how it ended."""
        proc = self._proc
        if proc is None:
            raise RuntimeError("training process not started")
        assert proc.stdout is not None
        with self.log_path.open("ab") as out:
            while line := await proc.stdout.readline():
                out.write(line)
                out.flush()
                event = parse_event(line)
                if event is not None:
                    self._end.note(event)
                    await self._deliver(event)
        code = await proc.wait()
        kill_group(proc.pid, signal.SIGKILL)  # anything the trainer forked goes with it
        return self._result(code)

    async def cancel(self) -> None:
        """SIGTERM the trainer (it checkpoints and exits); kill the group if it has not after the grace."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        self._cancelled = True
        kill_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.cancel_grace_s
        while proc.returncode is None and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        if proc.returncode is None:
            log.warning("trainer %s ignored SIGTERM for %.0f s; killing it", proc.pid, self.cancel_grace_s)
            kill_group(proc.pid, signal.SIGKILL)

    async def _deliver(self, event: TrainingEvent) -> None:
        try:
            await self.on_event(event)
        except Exception:  # a failing store must not kill the job; the log file keeps the line
            log.exception("could not record training event %s", event.event)

    def _result(self, code: int) -> JobResult:
        if self._end.event == "done" and code == 0 and not self._cancelled:
            return JobResult("succeeded", code, adapter_dir=self._end.adapter_dir)
        if self._cancelled or self._end.event == "cancelled":
            return JobResult("cancelled", code, error=None)
        error = self._end.error or self._describe_exit(code)
        return JobResult("failed", code, error=error)

    def _describe_exit(self, code: int) -> str:
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"trainer killed by {signal.Signals(-code).name} (see {self.log_path})"
        if code == 0:
            return f"trainer exited without reporting a result (see {self.log_path})"
        tail = _tail(self.log_path)
        return f"trainer exited with code {code}: {tail}" if tail else f"trainer exited with code {code}"


def _tail(path: Path, limit: int = 400) -> str:
    """The last non-empty line of a log, for an error message."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][-limit:] if lines else ""


def progress_bar(event: TrainingEvent, width: int = 24) -> str | None:
    """A one-line progress bar for a step event, for the gateway's console output."""
    if event.event != "step" or not event.step or not event.total_steps:
        return None
    done = min(1.0, event.step / event.total_steps)
    filled = round(done * width)
    parts = [f"[{'#' * filled}{'.' * (width - filled)}] {done:4.0%} step {event.step}/{event.total_steps}"]
    if event.loss is not None:
        parts.append(f"loss {event.loss:.4f}")
    if event.samples_per_s is not None:
        parts.append(f"{event.samples_per_s:.1f} samples/s")
    if event.eta_s is not None:
        parts.append(f"ETA {event.eta_s:.0f} s")
    return "  ".join(parts)
