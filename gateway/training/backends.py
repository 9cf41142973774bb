"""Where a training run executes: a child process of this gateway (the default) or a Ray job.

A backend turns a ``RunRequest`` (which job, its folder, resume or not, where to send events) into a
``Run`` with one lifecycle for the ``JobManager``: ``start``; ``wait`` for the ``JobResult``; ``cancel``
(the trainer checkpoints and the job ends cancelled); ``stop`` (this gateway shuts down: a local trainer
checkpoints, a Ray job keeps running for the next owner; both end ``wait`` as cancelled); ``abandon`` (the
lease was lost: stop at once without touching the job).

The local backend runs ``python -m finetune run SPEC`` in the job's folder when the model store is a local
folder, and ``python -m finetune job --store URL --job jobs/<id>`` when it is a bucket, so checkpoints
reach the store as they are written and another gateway can resume the job if this one dies.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from adapters.processes import kill_group
from gateway.jobs.leases import JobLeases
from gateway.settings import Settings
from gateway.training.runner import JobResult, TrainingEvent, TrainingProcess
from models_store.store import Store


@dataclass(frozen=True)
class RunRequest:
    job_id: str
    job_key: str  # the job's prefix in the model store: jobs/<id>
    folder: Path  # its files on this machine
    resume: bool
    on_event: Callable[[TrainingEvent], Awaitable[None]]
    leases: JobLeases
    handle: str | None = None  # the backend's id of a run a previous owner started (a Ray submission)
    cursor: int = 0  # how much of that run's output was already recorded
    attempt: int = 1


class Run(Protocol):
    async def start(self) -> None: ...

    async def wait(self) -> JobResult: ...

    async def cancel(self) -> None: ...

    async def stop(self) -> None: ...

    async def abandon(self) -> None: ...


LaunchRun = Callable[[RunRequest], Run]
Command = Callable[[Path, bool], list[str]]


class LocalRun:
    """A ``TrainingProcess`` child of this gateway."""

    def __init__(self, process: TrainingProcess) -> None:
        self.process = process

    async def start(self) -> None:
        await self.process.start()

    async def wait(self) -> JobResult:
        return await self.process.wait()

    async def cancel(self) -> None:
        await self.process.cancel()

    async def stop(self) -> None:
        await self.process.cancel()

    async def abandon(self) -> None:
        if self.process.pid is not None:
            kill_group(self.process.pid, signal.SIGKILL)


class LocalBackend:
    """Training children on this machine; ``command`` replaces the trainer (tests use stand-ins)."""

    def __init__(
        self, store: Store, cache_dir: Path, *, command: Command | None = None, cancel_grace_s: float = 60.0
    ) -> None:
        self.store = store
        self.cache_dir = cache_dir
        self.command = command
        self.cancel_grace_s = cancel_grace_s

    def __call__(self, request: RunRequest) -> Run:
        spec = request.folder / "spec.json"
        process = TrainingProcess(
            spec,
            log_path=request.folder / "train.log",
            on_event=request.on_event,
            resume=request.resume,
            command=self.command_for(request),
            cancel_grace_s=self.cancel_grace_s,
        )
        return LocalRun(process)

    def command_for(self, request: RunRequest) -> list[str] | None:
        """The trainer's command line; None for the default ``python -m finetune run SPEC``."""
        if self.command is not None:
            return self.command(request.folder / "spec.json", request.resume)
        if self.store.is_local:
            return None
        command = [sys.executable, "-m", "finetune", "job", "--store", self.store.url,
                   "--job", request.job_key, "--cache", str(self.cache_dir), "--quiet"]  # fmt: skip
        return command + (["--resume"] if request.resume else [])


def worker_id() -> str:
    """This gateway process as a lease owner: host, process id and a random part (ids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def training_backend(settings: Settings, store: Store) -> tuple[LaunchRun, Callable[[str], str]]:
    """The backend of the settings and how it names the base model to train: a local folder for local
    children; for Ray the folder when it exists here (workers are expected to have the same path), else
    the model id as given (found in the workers' Hugging Face cache)."""
    from gateway.training.service import local_model_dir

    if settings.training_backend == "ray":
        from gateway.training.ray_jobs import FORWARDED_ENV, RayBackend, RayResources

        resources = RayResources(settings.ray_num_gpus, settings.ray_num_cpus, settings.ray_memory_bytes)
        env = {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}
        backend = RayBackend(
            settings.ray_address or "", store, resources=resources, python=settings.ray_python,
            worker_cache=settings.ray_worker_cache_dir, env=env,
        )  # fmt: skip
        return backend, lambda _name: ray_model_ref(settings.model)
    local = LocalBackend(store, settings.store_cache_dir)
    return local, lambda _name: local_model_dir(settings.model)


def ray_model_ref(model: str | None) -> str:
    from gateway.training.service import local_model_dir

    if model is not None and not Path(model).is_dir():
        return model
    return local_model_dir(model)
