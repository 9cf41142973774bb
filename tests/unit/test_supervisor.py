"""The supervisor with a stand-in engine process: start, readiness, restart with back-off, no orphans."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from adapters.supervisor import EngineSpec, VLLMSupervisor, free_port

STAND_IN = Path(__file__).resolve().parents[1] / "stand_in_engine.py"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); read its state.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def spawned(pid_file: Path) -> list[tuple[int, int]]:
    if not pid_file.exists():
        return []
    return [tuple(map(int, line.split())) for line in pid_file.read_text().splitlines()]  # type: ignore[misc]


def supervisor_for(tmp_path: Path, messages: list[str]) -> VLLMSupervisor:
    port = free_port()
    pid_file = tmp_path / "pids"
    spec = EngineSpec(
        model="stand-in",
        served_name="stand-in",
        port=port,
        log_path=tmp_path / "engine.log",
        argv=[sys.executable, str(STAND_IN), str(port), str(pid_file)],
    )
    return VLLMSupervisor(spec, say=messages.append, max_backoff_s=0.5)


async def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_start_ready_and_stop_kills_the_whole_group(tmp_path: Path) -> None:
    messages: list[str] = []
    sup = supervisor_for(tmp_path, messages)
    await sup.start()
    assert await sup.wait_ready(20)
    assert sup.state == "up"
    [(server, child)] = spawned(tmp_path / "pids")
    assert alive(server) and alive(child)
    await sup.stop()
    await wait_for(lambda: not alive(server) and not alive(child))
    assert sup.state == "stopped"
    assert any("engine ready" in m for m in messages)
    assert any("Application startup complete" in m for m in messages), "milestones are printed"
    assert "Starting vLLM API server" in (tmp_path / "engine.log").read_text(), "full output goes to the log"


async def test_killed_engine_is_restarted_and_its_children_reaped(tmp_path: Path) -> None:
    messages: list[str] = []
    downs: list[int] = []
    sup = supervisor_for(tmp_path, messages)
    sup.on_down = lambda: downs.append(1)
    await sup.start()
    assert await sup.wait_ready(20)
    [(server, child)] = spawned(tmp_path / "pids")
    os.kill(server, signal.SIGKILL)
    await wait_for(lambda: len(spawned(tmp_path / "pids")) == 2, timeout=20)
    assert await sup.wait_ready(20)
    assert downs == [1]
    assert sup.restarts == 1
    assert not alive(child), "the old engine's child must not be orphaned"
    assert any("restarting in" in m for m in messages)
    await sup.stop()


async def test_missing_vllm_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import adapters.supervisor as mod

    monkeypatch.setattr(mod, "vllm_installed", lambda: False)
    spec = EngineSpec(model="m", served_name="m", port=free_port())
    with pytest.raises(mod.EngineFault, match="vLLM is not installed"):
        await VLLMSupervisor(spec).start()


def test_command_enables_lora_and_passes_extra_args() -> None:
    spec = EngineSpec(model="/m", served_name="tiny", port=1234, extra_args=["--max-model-len", "2048"])
    cmd = spec.command()
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert cmd[cmd.index("--served-model-name") + 1] == "tiny"
    assert "--enable-lora" in cmd
    assert cmd[-2:] == ["--max-model-len", "2048"]
    assert spec.environment()["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "1"


def test_cpu_engine_gets_a_bounded_kv_cache_unless_the_user_sized_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import adapters.supervisor as supervisor

    spec = EngineSpec(model="m", served_name="m", port=1)
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    monkeypatch.setattr(supervisor, "is_cpu_build", lambda: True)
    assert spec.environment()["VLLM_CPU_KVCACHE_SPACE"] == supervisor.DEFAULT_CPU_KVCACHE_GIB
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    assert spec.environment()["VLLM_CPU_KVCACHE_SPACE"] == "1"
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE")
    monkeypatch.setattr(supervisor, "is_cpu_build", lambda: False)
    assert "VLLM_CPU_KVCACHE_SPACE" not in spec.environment()


def test_an_engine_that_was_serving_restarts_at_once_and_a_crash_loop_backs_off() -> None:
    from adapters.supervisor import SERVED_LONG_ENOUGH_S, restart_delay

    assert restart_delay(0.0, SERVED_LONG_ENOUGH_S + 1, 30) == 0.0  # killed while serving: no wait
    assert restart_delay(8.0, 3600.0, 30) == 0.0  # a long healthy run forgets earlier crashes
    delays, delay = [], 0.0
    for _ in range(7):  # dies during start-up every time
        delay = restart_delay(delay, None, 30)
        delays.append(delay)
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    assert restart_delay(4.0, SERVED_LONG_ENOUGH_S - 1, 30) == 8  # up only briefly: still a crash loop


def test_retry_after_while_restarting_follows_the_last_start_time() -> None:
    from adapters.engine_client import EngineClient
    from adapters.pool import Engine, retry_after_s

    sup = VLLMSupervisor(EngineSpec(model="m", served_name="m", port=free_port()))
    engine = Engine(EngineClient(sup.spec.url), supervisor=sup)
    assert retry_after_s([engine]) == 5  # never started: no estimate
    sup.last_start_s, sup.state, sup._spawned_at = 50.0, "starting", time.monotonic() - 20
    assert retry_after_s([engine]) == 30
    sup._spawned_at = time.monotonic() - 80  # slower than last time: ask again soon
    assert retry_after_s([engine]) == 1
    sup.last_start_s, sup.state = 300.0, "down"
    assert retry_after_s([engine]) == 60  # capped: the openai SDK honours up to 60 s
