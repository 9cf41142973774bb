"""JobManager rules (statuses, registration, cancel, leases: interrupt, take-over and fencing) with stand-in
trainer children and leases in a real SQLite database; two managers on one database play two gateways."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.db.connection import open_database
from gateway.jobs.leases import GroupBusy, JobLeases
from gateway.training.backends import LocalBackend
from gateway.training.jobs import JobManager, JobStatus
from gateway.training.runner import JobResult, TrainingEvent
from models_store.store import LocalFolderStore

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

    async def status(self, job_id: str) -> JobStatus | None:
        seen = self.statuses.get(job_id)
        return seen[-1] if seen else None

    async def active_jobs(self) -> list[tuple[str, str]]:
        return []

    def last(self, job_id: str) -> JobStatus:
        return self.statuses[job_id][-1]


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[None]:
    """Leases live in a real (SQLite) database; statuses and events in ``MemoryStore``."""
    async with open_database(f"sqlite://{tmp_path / 'leases.sqlite3'}"):
        yield


def make_manager(
    tmp_path: Path,
    store: MemoryStore,
    registered: list[str],
    fail_register: bool = False,
    *,
    owner: str = "gateway-a",
    ttl_s: float = 30.0,
) -> JobManager:
    script = tmp_path / "trainer.py"
    script.write_text(TRAINER)

    async def on_succeeded(job_id: str, result: JobResult) -> None:
        if fail_register:
            raise OSError("disk full")
        registered.append(f"{job_id}:{Path(result.adapter_dir or '').name}")

    def command(spec: Path, resume: bool) -> list[str]:
        return [sys.executable, str(script), str(spec)] + (["--resume"] if resume else [])

    files = LocalFolderStore(tmp_path / "store")
    launch = LocalBackend(files, tmp_path / "cache", command=command, cancel_grace_s=5)
    leases = JobLeases("training", owner, ttl_s)
    return JobManager(files, store, leases, launch, on_succeeded, say=lambda _m: None)


async def start(manager: JobManager, job_id: str, spec: dict[str, object]) -> None:
    await manager.reserve(job_id, f"task:{job_id}")
    await manager.start(job_id, json.dumps(spec).encode())


async def until_done(manager: JobManager, job_id: str) -> None:
    for _ in range(500):
        if not manager.is_running(job_id):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} still running")


async def test_success_registers_once_and_records_every_event(tmp_path: Path, database: None) -> None:
    store, registered = MemoryStore(), []
    manager = make_manager(tmp_path, store, registered)
    await start(manager, "j1", {"steps": 3})
    await until_done(manager, "j1")
    assert store.statuses["j1"] == ["running", "succeeded"]
    assert [e.event for e in store.events["j1"]] == ["start", "step", "step", "step", "done"]
    assert registered == ["j1:adapter"]


async def test_trainer_error_fails_the_job_and_registers_nothing(tmp_path: Path, database: None) -> None:
    store, registered = MemoryStore(), []
    manager = make_manager(tmp_path, store, registered)
    await start(manager, "j2", {"steps": 3, "fail": True})
    await until_done(manager, "j2")
    assert store.last("j2") == "failed" and store.errors["j2"] == "loss is NaN" and registered == []


async def test_failed_registration_fails_the_job(tmp_path: Path, database: None) -> None:
    store, registered = MemoryStore(), []
    manager = make_manager(tmp_path, store, registered, fail_register=True)
    await start(manager, "j3", {"steps": 1})
    await until_done(manager, "j3")
    assert store.last("j3") == "failed" and "disk full" in (store.errors["j3"] or "")


async def test_cancel_and_double_start(tmp_path: Path, database: None) -> None:
    store, registered = MemoryStore(), []
    manager = make_manager(tmp_path, store, registered)
    await start(manager, "j4", {"steps": 10_000, "sleep": 0.01})
    with pytest.raises(RuntimeError):
        await manager.start("j4", b"{}")
    while len(store.events.get("j4", [])) < 3:
        await asyncio.sleep(0.02)
    assert await manager.cancel("j4") is True
    assert store.last("j4") == "cancelled" and registered == []
    assert await manager.cancel("j4") is False
    assert (tmp_path / "store" / "jobs" / "j4" / "checkpoint.json").exists()
    assert (await manager.leases.get("j4") or {})["active"] in (False, 0)  # the task may train again


async def test_shutdown_hands_the_job_to_the_next_gateway_which_resumes_it(
    tmp_path: Path, database: None
) -> None:
    store, registered = MemoryStore(), []
    first = make_manager(tmp_path, store, registered)
    await start(first, "j5", {"steps": 60, "sleep": 0.02})
    while len(store.events.get("j5", [])) < 5:
        await asyncio.sleep(0.02)
    await first.close()
    assert store.last("j5") == "interrupted" and registered == []
    stopped_at = json.loads((tmp_path / "store" / "jobs" / "j5" / "checkpoint.json").read_text())["step"]
    assert 0 < stopped_at < 60
    assert (await first.leases.get("j5") or {})["owner"] is None  # released at once, not left to expire

    second = make_manager(tmp_path, store, registered, owner="gateway-b")
    await second.tick()
    assert second.is_running("j5")
    await until_done(second, "j5")
    assert store.last("j5") == "succeeded" and registered == ["j5:adapter"]
    restart = [e for e in store.events["j5"] if e.event == "start"][-1]
    assert restart.step == stopped_at and restart.data["resumed"] is True
    assert any(e.event == "resumed" for e in store.events["j5"])


async def test_a_dead_owners_job_is_taken_over_once_its_lease_expires(tmp_path: Path, database: None) -> None:
    store, registered = MemoryStore(), []
    owner = make_manager(tmp_path, store, registered, ttl_s=1.0)
    await start(owner, "j7", {"steps": 400, "sleep": 0.01})
    other = make_manager(tmp_path, store, registered, owner="gateway-b", ttl_s=1.0)
    await other.tick()
    assert not other.is_running("j7")  # the owner's lease is live
    while len(store.events.get("j7", [])) < 5:
        await asyncio.sleep(0.02)
    await owner._abandon("j7", "test: the gateway froze")  # its trainer is gone, no status written
    await asyncio.sleep(1.2)
    await other.tick()
    assert other.is_running("j7")
    lost = await owner.leases.renew({"j7"})
    assert lost.lost == {"j7"}  # the old owner learns it at its next heartbeat and keeps out
    await until_done(other, "j7")
    assert store.last("j7") == "succeeded" and registered == ["j7:adapter"]
    resumed = [e.message for e in store.events["j7"] if e.event == "resumed"]
    assert resumed == ["Job taken over from gateway-a"]


async def test_cancel_from_another_gateway_reaches_the_owner(tmp_path: Path, database: None) -> None:
    store, registered = MemoryStore(), []
    owner = make_manager(tmp_path, store, registered, ttl_s=0.6)
    other = make_manager(tmp_path, store, registered, owner="gateway-b", ttl_s=0.6)
    await start(owner, "j8", {"steps": 10_000, "sleep": 0.01})
    heartbeat = asyncio.create_task(owner.run_forever())
    try:
        await other.cancel_anywhere("j8", wait_s=10)
    finally:
        owner._closing = True
        await heartbeat
    assert store.last("j8") == "cancelled" and registered == []
    with pytest.raises(GroupBusy):
        await other.reopen("j9", "task:j8")  # no such finished job: nothing to reopen


async def test_a_taken_job_without_spec_is_failed(tmp_path: Path, database: None) -> None:
    store, registered = MemoryStore(), []
    await store.set_status("lost", "interrupted")
    manager = make_manager(tmp_path, store, registered)
    await JobLeases("training", "nobody").create("lost", claim=False)
    await manager.tick()
    assert store.last("lost") == "failed" and "spec is missing" in (store.errors["lost"] or "")


async def test_console_shows_a_line_per_tenth_of_the_run(tmp_path: Path, database: None) -> None:
    store, registered, lines = MemoryStore(), [], []
    manager = make_manager(tmp_path, store, registered)
    manager.say = lines.append
    await start(manager, "j6", {"steps": 100})
    await until_done(manager, "j6")
    bars = [line for line in lines if "step" in line]
    assert 10 <= len(bars) <= 11 and bars[-1].count("step 100/100") == 1


async def test_a_gateway_that_cannot_renew_stops_its_runs_and_leaves_the_jobs_alone(
    tmp_path: Path, database: None
) -> None:
    store, registered = MemoryStore(), []
    manager = make_manager(tmp_path, store, registered, ttl_s=2.0)
    await start(manager, "j10", {"steps": 10_000, "sleep": 0.01})
    manager._last_renewal -= 100  # the database has not answered its heartbeats for a long time
    manager._fence_if_stale()
    await until_done(manager, "j10")
    assert store.last("j10") == "running" and registered == []  # whoever takes the lease decides the end
