"""Training jobs across gateways: start, follow, cancel, and take over a dead gateway's jobs.

A job is owned by exactly one gateway at a time through its lease in the database (``gateway.jobs.leases``,
kind ``training``, group ``task:<id>``, so a task has at most one active job whichever gateway is asked).
The owner runs it on its backend (a local child process, or a Ray job: ``gateway.training.backends``),
renews the lease by heartbeat, records every event, and decides the end:

- succeeded (then ``on_succeeded`` publishes the result; if that fails the job fails and nothing is left
  half-registered), failed with the trainer's error, or cancelled; the lease ends with the job;
- on a clean shutdown the runs stop (local children checkpoint; Ray jobs keep running) and their jobs become
  ``interrupted`` with the lease released, so another gateway (or this one after its restart) continues at
  once;
- when a gateway dies, its leases expire and another gateway claims them (``SKIP LOCKED``), resuming each
  job from the checkpoint its trainer pushed to the model store (or re-attaching to its Ray job);
- a gateway that could not renew its leases in time stops its runs without touching their jobs (another
  gateway may own them by now), so a job never runs twice.

Job files live in the model store under ``jobs/<id>/`` (spec, evaluation plan, output and checkpoints);
``job_dir`` is their local folder on this gateway (the store's own folder, or a cached copy).
Persistence of statuses and events is behind ``JobStore`` (the platform database implements it), so these
rules are unit-tested with an in-memory store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from gateway.jobs.leases import Claim, GroupBusy, JobLeases
from gateway.training.backends import LaunchRun, Run, RunRequest
from gateway.training.runner import JobResult, TrainingEvent, progress_bar
from models_store.store import Store

log = logging.getLogger("vlmgw.training")

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
FINAL: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled")

__all__ = ["FINAL", "GroupBusy", "JobManager", "JobStatus", "JobStore"]


class JobStore(Protocol):
    async def record_event(self, job_id: str, event: TrainingEvent) -> None: ...

    async def set_status(self, job_id: str, status: JobStatus, *, error: str | None = None) -> None: ...

    async def status(self, job_id: str) -> JobStatus | None: ...

    async def active_jobs(self) -> list[tuple[str, str]]: ...  # (job id, lease group) of unfinished jobs


OnSucceeded = Callable[[str, JobResult], Awaitable[None]]


@dataclass(eq=False)
class JobManager:
    """This gateway's share of the training jobs; ``run_forever`` in the background, ``close`` at shutdown.

    ``files``: the model store (job specs, images, checkpoints, adapters); ``store``: the jobs' rows.
    """

    files: Store
    store: JobStore
    leases: JobLeases
    launch: LaunchRun
    on_succeeded: OnSucceeded
    _: KW_ONLY
    say: Callable[[str], None] = print
    max_jobs: int = 0

    def __post_init__(self) -> None:
        self.heartbeat_s = max(0.2, self.leases.ttl_s / 3)
        self._runs: dict[str, Run] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._fenced: set[str] = set()
        self._side_tasks: set[asyncio.Future[Any]] = set()
        self._closing = False
        self._last_renewal = time.monotonic()
        self._shown: dict[str, int] = {}  # job id -> last tenth of progress printed

    # -- files -------------------------------------------------------------------------------------------
    @staticmethod
    def job_key(job_id: str) -> str:
        return f"jobs/{job_id}"

    def job_dir(self, job_id: str) -> Path:
        return self.files.local_path(self.job_key(job_id))

    def spec_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "spec.json"

    def has_spec(self, job_id: str) -> bool:
        return self.files.exists(f"{self.job_key(job_id)}/spec.json")

    async def write_file(self, job_id: str, name: str, data: bytes) -> None:
        await asyncio.to_thread(self.files.write, f"{self.job_key(job_id)}/{name}", data)

    async def materialise(self, job_id: str) -> Path:
        """The job's folder with its files (and the images its spec names) on this machine."""
        from finetune.store_job import materialise_job

        return await asyncio.to_thread(materialise_job, self.files, self.job_key(job_id))

    async def delete_files(self, job_id: str) -> None:
        await asyncio.to_thread(self.files.delete_prefix, self.job_key(job_id))

    # -- starting ----------------------------------------------------------------------------------------
    def is_running(self, job_id: str) -> bool:
        return job_id in self._tasks

    async def reserve(self, job_id: str, group: str) -> None:
        """Take the lease of a new job in ``group`` for this gateway; ``GroupBusy`` when one is active."""
        await self.leases.create(job_id, group=group)

    async def reopen(self, job_id: str, group: str) -> None:
        """Take the lease of a finished job again (resume); ``GroupBusy`` when another job is active."""
        await self.leases.reactivate(job_id, group=group)

    async def start(self, job_id: str, spec: bytes, *, resume: bool = False) -> None:
        """Store the job's spec (unless resuming) and start its run here; the lease must be ours."""
        if job_id in self._tasks:
            raise RuntimeError(f"job {job_id} is already running")
        if spec and not (resume and self.has_spec(job_id)):
            await self.write_file(job_id, "spec.json", spec)
        await self._launch(job_id, resume)

    async def _launch(self, job_id: str, resume: bool, claim: Claim | None = None) -> None:
        folder = await self.materialise(job_id)
        request = RunRequest(
            job_id=job_id, job_key=self.job_key(job_id), folder=folder, resume=resume,
            on_event=lambda event: self._on_event(job_id, event), handle=claim.handle if claim else None,
            cursor=claim.cursor if claim else 0, attempt=claim.attempts if claim else 1, leases=self.leases,
        )  # fmt: skip
        run = self.launch(request)
        await run.start()
        self._runs[job_id] = run
        await self.store.set_status(job_id, "running")
        self._tasks[job_id] = asyncio.create_task(self._follow(job_id, run), name=f"training-{job_id}")

    # -- cancelling --------------------------------------------------------------------------------------
    async def cancel(self, job_id: str) -> bool:
        """Cancel a job that runs here (the trainer checkpoints first); False when it does not."""
        run = self._runs.get(job_id)
        if run is None:
            return False
        await run.cancel()
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.shield(task)
        return True

    async def cancel_anywhere(self, job_id: str, wait_s: float | None = None) -> None:
        """Cancel a job wherever it runs: here; or by taking a dead owner's lease; or by asking the live
        owner through the lease, then waiting (up to ``wait_s``) for it to end the job."""
        if await self.cancel(job_id):
            return
        claim = await self.leases.claim(job_id)
        if claim is not None or await self.leases.get(job_id) is None:
            if claim is not None and claim.handle:
                await self.launch(self._request_for(job_id, claim)).cancel()
            await self.store.set_status(job_id, "cancelled")
            await self.leases.finish(job_id, only_if_owner=claim is not None)
            return
        await self.leases.request_cancel(job_id)
        deadline = time.monotonic() + (wait_s if wait_s is not None else self.leases.ttl_s * 2)
        while time.monotonic() < deadline and await self.store.status(job_id) not in FINAL:
            await asyncio.sleep(min(0.5, self.heartbeat_s))

    def _request_for(self, job_id: str, claim: Claim) -> RunRequest:
        return RunRequest(
            job_id=job_id, job_key=self.job_key(job_id), folder=self.job_dir(job_id), resume=True,
            on_event=lambda event: self._on_event(job_id, event), handle=claim.handle, cursor=claim.cursor,
            attempt=claim.attempts, leases=self.leases,
        )  # fmt: skip

    # -- ownership: heartbeat, take-over, fencing ---------------------------------------------------------
    async def run_forever(self) -> None:
        """Renew this gateway's leases and claim unowned or expired ones, every third of the lease time."""
        await self._lease_orphans()
        while not self._closing:
            try:
                await self.tick()
            except Exception:  # the loop must survive a database hiccup; fencing covers a long one
                log.exception("training job leases: heartbeat failed")
                self._fence_if_stale()
            await asyncio.sleep(self.heartbeat_s)

    async def tick(self) -> None:
        """One heartbeat: renew, stop what was lost or cancelled elsewhere, claim what is free."""
        renewal = await self.leases.renew(set(self._runs))
        self._last_renewal = time.monotonic()
        for job_id in renewal.lost & set(self._runs):
            await self._abandon(job_id, "its lease was taken over by another gateway")
        for job_id in renewal.cancel & set(self._runs):
            self._background(self.cancel(job_id))
        if self._closing:
            return
        room = self.max_jobs - len(self._runs) if self.max_jobs else 8
        for claim in await self.leases.claim_next(room):
            await self._adopt(claim)

    def _fence_if_stale(self) -> None:
        """Leases not renewed for most of their time may be another gateway's soon: stop the runs here."""
        if time.monotonic() - self._last_renewal <= self.leases.ttl_s * 0.8 or not self._runs:
            return
        log.warning("training job leases not renewed in time; stopping %s here", ", ".join(self._runs))
        self._fenced.update(self._runs)
        for run in list(self._runs.values()):
            self._background(run.abandon())

    def _background(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _abandon(self, job_id: str, why: str) -> None:
        """Stop running a job without touching its status: another gateway owns it (or soon will)."""
        run = self._runs.get(job_id)
        if run is None:
            return
        log.warning("training job %s: stopping here, %s", job_id, why)
        self._fenced.add(job_id)
        await run.abandon()

    async def _adopt(self, claim: Claim) -> None:
        """Continue a claimed job: resume it from its last checkpoint (or re-attach to its Ray job)."""
        job_id = claim.job_id
        status = await self.store.status(job_id)
        if status is None or status in FINAL:
            await self.leases.finish(job_id)
            return
        if claim.cancel:
            await self.store.set_status(job_id, "cancelled")
            await self.leases.finish(job_id)
            return
        if not self.has_spec(job_id):
            await self.store.set_status(job_id, "failed", error=f"{status} and its spec is missing")
            await self.leases.finish(job_id)
            return
        how = f"taken over from {claim.previous_owner}" if claim.previous_owner else "resumed"
        self.say(f"training job {job_id}: {how} (attempt {claim.attempts})")
        await self.store.record_event(job_id, TrainingEvent(event="resumed", message=f"Job {how}"))
        try:
            await self._launch(job_id, resume=True, claim=claim)
        except Exception as exc:
            log.exception("training job %s: could not resume", job_id)
            await self.store.set_status(job_id, "failed", error=f"could not resume: {exc}")
            await self.leases.finish(job_id)

    async def _lease_orphans(self) -> None:
        """Unfinished jobs without a lease (a database from before leases existed) get an unowned one."""
        for job_id, group in await self.store.active_jobs():
            with contextlib.suppress(GroupBusy):
                await self.leases.create(job_id, group=group, claim=False)

    async def close(self) -> None:
        """Stop every run here (local trainers checkpoint) and hand the jobs back as ``interrupted``."""
        self._closing = True
        await asyncio.gather(*(run.stop() for run in self._runs.values()), return_exceptions=True)
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    # -- following ---------------------------------------------------------------------------------------
    async def _on_event(self, job_id: str, event: TrainingEvent) -> None:
        await self.store.record_event(job_id, event)
        bar = progress_bar(event)
        if bar is not None and self._worth_showing(job_id, event):
            self.say(f"training {job_id} {bar}")

    def _worth_showing(self, job_id: str, event: TrainingEvent) -> bool:
        """A console line per tenth of the run (and the last step), not one per step."""
        assert event.step is not None and event.total_steps
        tenth = event.step * 10 // event.total_steps
        if event.step != event.total_steps and self._shown.get(job_id) == tenth:
            return False
        self._shown[job_id] = tenth
        return True

    async def _follow(self, job_id: str, run: Run) -> None:
        try:
            result = await run.wait()
            if job_id not in self._fenced:
                await self._finish(job_id, result)
        except Exception as exc:  # the job must end in a final state whatever broke here
            log.exception("training job %s: following it failed", job_id)
            await self.store.set_status(job_id, "failed", error=f"gateway error while following: {exc}")
            await self.leases.finish(job_id)
        finally:
            self._runs.pop(job_id, None)
            self._tasks.pop(job_id, None)
            self._fenced.discard(job_id)

    async def _finish(self, job_id: str, result: JobResult) -> None:
        if job_id not in (await self.leases.renew(set(self._runs))).held:
            log.warning("training job %s ended here after its lease was lost; left to its owner", job_id)
            return
        if result.outcome == "cancelled" and self._closing:
            await self.store.set_status(job_id, "interrupted")
            await self.leases.release(job_id)
            return
        if result.outcome != "succeeded":
            self.say(
                f"training job {job_id} {result.outcome}" + (f": {result.error}" if result.error else "")
            )
            await self.store.set_status(job_id, result.outcome, error=result.error)
            await self.leases.finish(job_id)
            return
        try:
            await self.on_succeeded(job_id, result)
        except Exception as exc:
            log.exception("training job %s: registering the result failed", job_id)
            await self.store.set_status(
                job_id, "failed", error=f"could not register the trained model: {exc}"
            )
            await self.leases.finish(job_id)
            return
        self.say(f"training job {job_id} succeeded")
        await self.store.set_status(job_id, "succeeded")
        await self.leases.finish(job_id)
