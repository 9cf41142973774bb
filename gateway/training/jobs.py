"""Training jobs of this gateway: start, follow, cancel, and resume after a restart.

The manager owns the running ``TrainingProcess`` children of this gateway process. Persistence is behind
``JobStore`` (the platform API's database implements it), so the rules live here and are unit-tested with
an in-memory store:

- every event of the child is stored, and step events update the job's progress;
- the end of the child decides the job's status: succeeded (then ``on_succeeded`` registers the result;
  if that fails the job fails and nothing is left half-registered), failed with the trainer's error, or
  cancelled;
- on gateway shutdown the children are stopped with SIGTERM (they checkpoint) and their jobs are marked
  ``interrupted``; ``resume_interrupted`` on the next start continues each from its checkpoint, and a job
  that cannot be resumed (its spec is gone) is marked failed. A job is never left ``running`` without a
  process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal, Protocol

from gateway.training.runner import JobResult, TrainingEvent, TrainingProcess, progress_bar

log = logging.getLogger("vlmgw.training")

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]


class JobStore(Protocol):
    async def record_event(self, job_id: str, event: TrainingEvent) -> None: ...

    async def set_status(self, job_id: str, status: JobStatus, *, error: str | None = None) -> None: ...

    async def interrupted_jobs(self) -> list[str]: ...


OnSucceeded = Callable[[str, JobResult], Awaitable[None]]


class JobManager:
    """Runs at most one child per job id; call ``close`` in the app's shutdown."""

    def __init__(
        self,
        jobs_dir: Path,
        store: JobStore,
        on_succeeded: OnSucceeded,
        *,
        say: Callable[[str], None] = print,
        command: Callable[[Path, bool], list[str]] | None = None,
        cancel_grace_s: float = 60.0,
    ) -> None:
        self.jobs_dir = jobs_dir
        self.store = store
        self.on_succeeded = on_succeeded
        self.say = say
        self.command = command
        self.cancel_grace_s = cancel_grace_s
        self._procs: dict[str, TrainingProcess] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closing = False
        self._shown: dict[str, int] = {}  # job id -> last tenth of progress printed

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def spec_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "spec.json"

    def is_running(self, job_id: str) -> bool:
        return job_id in self._tasks

    async def start(self, job_id: str, spec: bytes, *, resume: bool = False) -> None:
        """Write the job's spec and start its trainer; returns once the child is running."""
        if job_id in self._tasks:
            raise RuntimeError(f"job {job_id} is already running")
        path = self.spec_path(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not resume or not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(spec)
            tmp.replace(path)
        await self._launch(job_id, resume)

    async def _launch(self, job_id: str, resume: bool) -> None:
        path = self.spec_path(job_id)
        command = self.command(path, resume) if self.command else None
        proc = TrainingProcess(
            path,
            log_path=self.job_dir(job_id) / "train.log",
            on_event=lambda event: self._on_event(job_id, event),
            resume=resume,
            command=command,
            cancel_grace_s=self.cancel_grace_s,
        )
        await proc.start()
        self._procs[job_id] = proc
        await self.store.set_status(job_id, "running")
        self._tasks[job_id] = asyncio.create_task(self._follow(job_id, proc), name=f"training-{job_id}")

    async def cancel(self, job_id: str) -> bool:
        """Cancel a running job (the trainer checkpoints first); False when it is not running here."""
        proc = self._procs.get(job_id)
        if proc is None:
            return False
        await proc.cancel()
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.shield(task)
        return True

    async def resume_interrupted(self) -> list[str]:
        """Continue the jobs a previous run of the gateway stopped; fail those that cannot continue."""
        resumed = []
        for job_id in await self.store.interrupted_jobs():
            if not self.spec_path(job_id).exists():
                await self.store.set_status(job_id, "failed", error="interrupted and its spec is missing")
                continue
            self.say(f"training job {job_id}: resuming after a gateway restart")
            await self._launch(job_id, resume=True)
            resumed.append(job_id)
        return resumed

    async def close(self) -> None:
        """Stop every child (each checkpoints) and mark its job interrupted, for the next start."""
        self._closing = True
        await asyncio.gather(*(proc.cancel() for proc in self._procs.values()), return_exceptions=True)
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

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

    async def _follow(self, job_id: str, proc: TrainingProcess) -> None:
        try:
            result = await proc.wait()
            await self._finish(job_id, result)
        except Exception as exc:  # the job must end in a final state whatever broke here
            log.exception("training job %s: following it failed", job_id)
            await self.store.set_status(job_id, "failed", error=f"gateway error while following: {exc}")
        finally:
            self._procs.pop(job_id, None)
            self._tasks.pop(job_id, None)

    async def _finish(self, job_id: str, result: JobResult) -> None:
        if result.outcome == "cancelled" and self._closing:
            await self.store.set_status(job_id, "interrupted")
            return
        if result.outcome != "succeeded":
            self.say(
                f"training job {job_id} {result.outcome}" + (f": {result.error}" if result.error else "")
            )
            await self.store.set_status(job_id, result.outcome, error=result.error)
            return
        try:
            await self.on_succeeded(job_id, result)
        except Exception as exc:
            log.exception("training job %s: registering the result failed", job_id)
            await self.store.set_status(
                job_id, "failed", error=f"could not register the trained model: {exc}"
            )
            return
        self.say(f"training job {job_id} succeeded")
        await self.store.set_status(job_id, "succeeded")
