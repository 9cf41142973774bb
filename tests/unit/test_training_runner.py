"""The training-job runner against small stand-in trainer scripts (real child processes, real signals)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.training.runner import JobResult, TrainingEvent, TrainingProcess, parse_event, progress_bar


def trainer(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "trainer.py"
    script.write_text(
        "import json, signal, sys, time\n"
        "def emit(**kw):\n    print(json.dumps(kw), flush=True)\n" + textwrap.dedent(body)
    )
    return [sys.executable, str(script)]


async def run(tmp_path: Path, body: str) -> tuple[list[TrainingEvent], TrainingProcess]:
    events: list[TrainingEvent] = []

    async def record(event: TrainingEvent) -> None:
        events.append(event)

    proc = TrainingProcess(
        tmp_path / "spec.json", log_path=tmp_path / "job.log", on_event=record,
        command=trainer(tmp_path, body), cancel_grace_s=2,
    )  # fmt: skip
    await proc.start()
    return events, proc


async def test_success_relays_events_in_order(tmp_path: Path) -> None:
    events, proc = await run(
        tmp_path,
        """
        emit(event="start", total_steps=2)
        print("not json: goes to the log only", flush=True)
        emit(event="step", step=1, total_steps=2, loss=2.5, lr=1e-3, samples_per_s=4.0, eta_s=1, extra=7)
        emit(event="done", adapter_dir="/tmp/adapter")
        """,
    )
    result = await proc.wait()
    assert result.outcome == "succeeded" and result.adapter_dir == "/tmp/adapter"
    assert [e.event for e in events] == ["start", "step", "done"]
    assert events[1].loss == 2.5 and events[1].data == {"extra": 7}
    assert "not json" in (tmp_path / "job.log").read_text()


async def test_error_event_gives_failed_with_its_message(tmp_path: Path) -> None:
    _, proc = await run(tmp_path, 'emit(event="error", message="CUDA out of memory")\nsys.exit(1)\n')
    result = await proc.wait()
    assert (result.outcome, result.error) == ("failed", "CUDA out of memory")


async def test_crash_without_events_is_failed_with_log_tail(tmp_path: Path) -> None:
    _, proc = await run(tmp_path, 'sys.stderr.write("Traceback: boom\\n")\nsys.exit(3)\n')
    result = await proc.wait()
    assert result.outcome == "failed" and result.exit_code == 3
    assert result.error is not None and "boom" in result.error


async def test_exit_zero_without_done_is_not_success(tmp_path: Path) -> None:
    _, proc = await run(tmp_path, 'emit(event="start")\n')
    result = await proc.wait()
    assert result.outcome == "failed" and "without reporting" in (result.error or "")


async def test_cancel_lets_trainer_checkpoint(tmp_path: Path) -> None:
    events, proc = await run(
        tmp_path,
        """
        def on_term(*_):
            emit(event="checkpoint", step=3)
            emit(event="cancelled", step=3)
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        emit(event="start")
        while True:
            time.sleep(0.05)
        """,
    )
    result = await cancel_after_first_event(proc, events)
    assert result.outcome == "cancelled"
    assert [e.event for e in events] == ["start", "checkpoint", "cancelled"]


async def test_cancel_kills_a_trainer_that_ignores_sigterm(tmp_path: Path) -> None:
    events, proc = await run(
        tmp_path,
        """
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        emit(event="start")
        while True:
            time.sleep(0.05)
        """,
    )
    result = await cancel_after_first_event(proc, events)
    assert result.outcome == "cancelled" and result.exit_code == -signal.SIGKILL
    assert proc.pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)


async def cancel_after_first_event(proc: TrainingProcess, events: list[TrainingEvent]) -> JobResult:
    """Follow the job; once its first event arrived (its signal handler is set), cancel it."""
    job = asyncio.create_task(proc.wait())
    while not events:
        await asyncio.sleep(0.02)
    await proc.cancel()
    return await job


def test_parse_event_rejects_non_events() -> None:
    assert parse_event(b"hello") is None
    assert parse_event(b"[1, 2]") is None
    assert parse_event(b'{"step": 1}') is None
    odd = parse_event(b'{"event": "step", "step": "three"}')
    assert odd is not None and odd.event == "step" and odd.step is None and odd.data["step"] == "three"
    typed = parse_event(b'{"type": "done", "adapter_dir": "/a"}')
    assert typed is not None and typed.event == "done" and typed.adapter_dir == "/a"


def test_progress_bar() -> None:
    line = progress_bar(TrainingEvent(event="step", step=5, total_steps=10, loss=0.5, eta_s=12))
    assert line is not None and "50%" in line and "step 5/10" in line and "ETA 12 s" in line
    assert progress_bar(TrainingEvent(event="start")) is None
