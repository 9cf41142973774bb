"""JobManager rules (statuses, registration, cancel, interrupt and resume) with stand-in trainer children."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from gateway.training.jobs import JobManager, JobStatus
from gateway.training.runner import JobResult, TrainingEvent

TRAINER = r"""
import json, signal, sys, time
from pathlib import Path
spec_path = Path(sys.argv[1]); spec = json.loads(spec_path.read_text())
ckpt = spec_path.parent / "checkpoint.json"
step = json.loads(ckpt.read_text())["step"] if "--resume" in sys.argv and ckpt.exists() else 0
def emit(**kw): print(json.dumps(kw), flush=True)
def on_term(*_):
    ckpt.write_text(json.dumps({"step": step})); emit(event="cancelled", step=step); sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
emit(event="start", step=step, resumed="--resume" in sys.argv)
if spec.get("fail"):
    emit(event="error", message="loss is NaN"); sys.exit(1)
while step < spec["steps"]:
    step += 1
    emit(event="step", step=step, total_steps=spec["steps"], loss=1.0 / step)
    time.sleep(spec.get("sleep", 0))
emit(event="done", adapter_dir=str(spec_path.parent / "adapter"))
"""


class MemoryStore:
    def __init__(self) -> None:
        self.events: dict[str, list[TrainingEvent]] = {}
        self.statuses: dict[str, list[JobStatus]] = {}
        self.errors: dict[str, str | None] = {}

    async def record_event(self, job_id: str, event: TrainingEvent) -> None:
        self.events.setdefault(job_id, []).append(event)

    async def set_status(self, job_id: str, status: JobStatus, *, error: str | None = None) -> None:
        self.statuses.setdefault(job_id, []).append(status)
        self.errors[job_id] = error

    async def interrupted_jobs(self) -> list[str]:
        return [job for job, seen in self.statuses.items() if seen[-1] == "interrupted"]

    def status(self, job_id: str) -> JobStatus:
        return self.statuses[job_id][-1]


def make_manager(
    tmp_path: Path, store: MemoryStore, registered: list[str], fail_register: bool = False
) -> JobManager:
    script = tmp_path / "trainer.py"
    script.write_text(TRAINER)

    async def on_succeeded(job_id: str, result: JobResult) -> None:
        if fail_register:
            raise OSError("disk full")
        registered.append(f"{job_id}:{Path(result.adapter_dir or '').name}")

    def command(spec: Path, resume: bool) -> list[str]:
        return [sys.executable, str(script), str(spec)] + (["--resume"] if resume else [])

    return JobManager(
        tmp_path / "jobs", store, on_succeeded, say=lambda _m: None, cancel_grace_s=5, command=command
    )


async def until_done(manager: JobManager, job_id: str) -> None:
    for _ in range(500):
        if not manager.is_running(job_id):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} still running")


async def test_success_registers_once_and_records_every_event(tmp_path: Path) -> None:
    store, registered = MemoryStore(), []
    manager = make_manager(tmp_path, store, registered)
    await manager.start("j1", json.dumps({"steps": 3}).encode())
    await until_done(manager, "j1")
    assert store.statuses["j1"] == ["running", "succeeded"]
    assert [e.event for e in store.events["j1"]] == ["start", "step", "step", "step", "done"]
    assert registered == ["j1:adapter"]


async def test_trainer_error_fails_the_job_and_registers_nothing(tmp_path: Path) -> None:
    store, registered = MemoryStore(), []
    manager = make_manager(tmp_path, store, registered)
    await manager.start("j2", json.dumps({"steps": 3, "fail": True}).encode())
    await until_done(manager, "j2")
    assert store.status("j2") == "failed" and store.errors["j2"] == "loss is NaN" and registered == []


async def test_failed_registration_fails_the_job(tmp_path: Path) -> None:
    store, registered = MemoryStore(), []
    manager = make_manager(tmp_path, store, registered, fail_register=True)
    await manager.start("j3", json.dumps({"steps": 1}).encode())
    await until_done(manager, "j3")
    assert store.status("j3") == "failed" and "disk full" in (store.errors["j3"] or "")


async def test_cancel_and_double_start(tmp_path: Path) -> None:
    store, registered = MemoryStore(), []
    manager = make_manager(tmp_path, store, registered)
    await manager.start("j4", json.dumps({"steps": 10_000, "sleep": 0.01}).encode())
    with pytest.raises(RuntimeError):
        await manager.start("j4", b"{}")
    while len(store.events.get("j4", [])) < 3:
        await asyncio.sleep(0.02)
    assert await manager.cancel("j4") is True
    assert store.status("j4") == "cancelled" and registered == []
    assert await manager.cancel("j4") is False
    assert (tmp_path / "jobs" / "j4" / "checkpoint.json").exists()


async def test_shutdown_interrupts_and_next_start_resumes_from_checkpoint(tmp_path: Path) -> None:
    store, registered = MemoryStore(), []
    first = make_manager(tmp_path, store, registered)
    await first.start("j5", json.dumps({"steps": 60, "sleep": 0.02}).encode())
    while len(store.events.get("j5", [])) < 5:
        await asyncio.sleep(0.02)
    await first.close()
    assert store.status("j5") == "interrupted" and registered == []
    stopped_at = json.loads((tmp_path / "jobs" / "j5" / "checkpoint.json").read_text())["step"]
    assert 0 < stopped_at < 60

    second = make_manager(tmp_path, store, registered)
    assert await second.resume_interrupted() == ["j5"]
    await until_done(second, "j5")
    assert store.status("j5") == "succeeded" and registered == ["j5:adapter"]
    restart = [e for e in store.events["j5"] if e.event == "start"][-1]
    assert restart.step == stopped_at and restart.data["resumed"] is True


async def test_interrupted_job_without_spec_is_failed(tmp_path: Path) -> None:
    store, registered = MemoryStore(), []
    await store.set_status("lost", "interrupted")
    manager = make_manager(tmp_path, store, registered)
    assert await manager.resume_interrupted() == []
    assert store.status("lost") == "failed" and "spec is missing" in (store.errors["lost"] or "")


async def test_console_shows_a_line_per_tenth_of_the_run(tmp_path: Path) -> None:
    store, registered, lines = MemoryStore(), [], []
    manager = make_manager(tmp_path, store, registered)
    manager.say = lines.append
    await manager.start("j6", json.dumps({"steps": 100}).encode())
    await until_done(manager, "j6")
    bars = [line for line in lines if "step" in line]
    assert 10 <= len(bars) <= 11 and bars[-1].count("step 100/100") == 1
