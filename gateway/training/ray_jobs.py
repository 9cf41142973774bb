"""Training runs as Ray jobs, through Ray's job submission API (the dashboard's REST API, ``/api/jobs/``).

``--training-backend ray --ray-address http://HEAD:8265`` submits each run as a job whose entrypoint is
``python -m finetune job --store URL --job jobs/<id>``: the worker Ray picks reads the spec, the images and
any checkpoint from the shared model store and pushes checkpoints and the adapter back to it, so the
gateway and the worker share nothing else. The job asks Ray for the GPUs, CPUs and memory of the settings
(``entrypoint_num_gpus`` ...), so Ray places it on a machine that has them.

The gateway follows a run by polling its status and its log (the trainer's JSON lines): lines past the
lease's ``cursor`` become job events, and the cursor is saved with the lease, so a gateway that takes the
job over re-attaches to the same Ray job (its submission id is the lease's ``handle``) without recording an
event twice. Cancelling stops the Ray job (Ray sends SIGTERM; the trainer checkpoints); a gateway that
shuts down only stops following, and the next owner re-attaches.

The gateway speaks HTTP to Ray and does not import it; the workers need vlm-gateway with its ``train``
extra installed (``python -m finetune`` and the store), and their own ``AWS_*`` settings for an S3 store.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec

from gateway.training.backends import Run, RunRequest
from gateway.training.runner import JobResult, TrainerEnd, parse_event
from models_store.store import Store

log = logging.getLogger("vlmgw.training")

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
FORWARDED_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION")


class RayError(RuntimeError):
    """Ray's job API refused or failed a call; the message has its answer."""


@dataclass(frozen=True)
class RayResources:
    num_gpus: float = 1.0
    num_cpus: float = 1.0
    memory_bytes: int = 0


class RayJobClient:
    """The few calls of Ray's job REST API the gateway uses."""

    def __init__(self, address: str, timeout_s: float = 30.0) -> None:
        self.base = address.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with (
            aiohttp.ClientSession(timeout=self.timeout) as http,
            http.request(method, self.base + path, json=body) as resp,
        ):
            text = await resp.text()
            if resp.status >= 400:
                raise RayError(f"Ray job API {method} {path}: HTTP {resp.status}: {text[:500]}")
        return msgspec.json.decode(text) if text.strip() else None

    async def submit(
        self, submission_id: str, entrypoint: str, env: dict[str, str], res: RayResources
    ) -> None:
        body: dict[str, Any] = {
            "entrypoint": entrypoint,
            "submission_id": submission_id,
            "runtime_env": {"env_vars": env},
            "entrypoint_num_cpus": res.num_cpus,
            "entrypoint_num_gpus": res.num_gpus,
            "metadata": {"source": "vlm-gateway"},
        }
        if res.memory_bytes:
            body["entrypoint_memory"] = res.memory_bytes
        await self._call("POST", "/api/jobs/", body)

    async def status(self, submission_id: str) -> tuple[str, str]:
        """(status, message); status is PENDING, RUNNING, STOPPED, SUCCEEDED or FAILED."""
        info = await self._call("GET", f"/api/jobs/{submission_id}")
        return str(info.get("status", "")), str(info.get("message") or "")

    async def logs(self, submission_id: str) -> str:
        return str((await self._call("GET", f"/api/jobs/{submission_id}/logs") or {}).get("logs", ""))

    async def stop(self, submission_id: str) -> None:
        await self._call("POST", f"/api/jobs/{submission_id}/stop")


class RayRun:
    """One training run on Ray, submitted by this gateway or re-attached after a take-over."""

    def __init__(self, backend: RayBackend, request: RunRequest) -> None:
        self.backend = backend
        self.request = request
        self.submission_id = request.handle or f"vlmgw-train-{request.job_id}-{request.attempt}"
        self.cursor = request.cursor if request.handle else 0
        self._following = True
        self._cancelled = False
        self._end = TrainerEnd()

    async def start(self) -> None:
        client = self.backend.client
        if self.request.handle is not None:
            status, _ = await client.status(self.submission_id)
            if status not in TERMINAL or status == "SUCCEEDED":
                job, ray_job = self.request.job_id, self.submission_id
                log.info("training job %s: following Ray job %s (%s)", job, ray_job, status)
                return
            self.submission_id = f"vlmgw-train-{self.request.job_id}-{self.request.attempt}"
            self.cursor = 0
        resume = self.request.resume or self.request.handle is not None
        entrypoint = self.backend.entrypoint(self.request, resume)
        await client.submit(self.submission_id, entrypoint, self.backend.env, self.backend.resources)
        await self.request.leases.set_handle(self.request.job_id, self.submission_id, 0)

    async def wait(self) -> JobResult:
        client = self.backend.client
        while True:
            status, message = await client.status(self.submission_id)
            await self._read_new_lines()
            if status in TERMINAL:
                return self._result(status, message)
            if not self._following:
                return JobResult("cancelled", 0)
            await asyncio.sleep(self.backend.poll_s)

    async def _read_new_lines(self) -> None:
        """Events of the complete log lines past the cursor (all lines are noted: a re-attached run that
        already ended still knows its outcome)."""
        text = await self.backend.client.logs(self.submission_id)
        lines = text.splitlines()
        if lines and not text.endswith("\n"):
            lines.pop()  # a line still being written: read it next time
        for index, line in enumerate(lines):
            event = parse_event(line.encode())
            if event is not None:
                self._end.note(event)
                if index >= self.cursor:
                    await self.request.on_event(event)
        if len(lines) > self.cursor:
            self.cursor = len(lines)
            await self.request.leases.set_cursor(self.request.job_id, self.cursor)

    def _result(self, status: str, message: str) -> JobResult:
        if status == "SUCCEEDED" and self._end.event == "done":
            return JobResult("succeeded", 0, adapter_dir=self._end.adapter_dir)
        if status == "STOPPED" or self._cancelled or self._end.event == "cancelled":
            return JobResult("cancelled", 0)
        error = self._end.error or f"Ray job {self.submission_id}: {status} {message}"
        return JobResult("failed", 1, error=error)

    async def cancel(self) -> None:
        self._cancelled = True
        await self.backend.client.stop(self.submission_id)

    async def stop(self) -> None:
        self._following = False  # the Ray job goes on; the next owner of the lease re-attaches

    async def abandon(self) -> None:
        self._following = False


class RayBackend:
    """Launches ``RayRun`` s on the cluster at ``address``."""

    def __init__(
        self,
        address: str,
        store: Store,
        *,
        resources: RayResources,
        python: str = "python",
        worker_cache: str = "/tmp/vlmgw-store-cache",
        env: dict[str, str] | None = None,
        poll_s: float = 1.0,
    ) -> None:
        self.client = RayJobClient(address)
        self.store = store
        self.resources = resources
        self.python = python
        self.worker_cache = worker_cache
        self.env = env or {}
        self.poll_s = poll_s

    def entrypoint(self, request: RunRequest, resume: bool) -> str:
        command = [self.python, "-m", "finetune", "job", "--store", self.store.url, "--job", request.job_key,
                   "--cache", self.worker_cache, "--quiet"]  # fmt: skip
        return shlex.join(command + (["--resume"] if resume else []))

    def __call__(self, request: RunRequest) -> Run:
        return RayRun(self, request)
