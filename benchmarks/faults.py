"""Faults on the real engine (vLLM CPU build, tiny model), measured: what users see and what is kept.

    flock /work/.locks/vllm uv run python benchmarks/faults.py            # all scenarios, about 6 minutes
    flock /work/.locks/vllm uv run python benchmarks/faults.py lru kill   # some of them

One gateway spawns vLLM with 2 LoRA slots and 4 registered adapters (random LoRA weights, so each answers
differently); the scenarios run against it in order:

- ``lru``: more adapters than engine slots. Each adapter is asked the same question (temperature 0) in
  rounds, one after another and then all at once; every answer must equal that adapter's first answer
  (the right weights, reloaded after eviction), and the engine must never hold more than 2 adapters.
- ``kill``: the engine's API server is sent SIGKILL while 8 clients send requests (base model and the two
  loaded adapters, streamed and not). Every failed request must be a 503 with ``Retry-After`` (or, for a
  stream that had begun, an error event); the script measures the time until answers come back and what
  it was spent on (from the gateway's log), and checks that the adapters the engine had are loaded again
  by the gateway itself and answer as before.
- ``training``: a second gateway (``--engine-url`` to the same engine, its own SQLite data folder, a 5 s
  job lease) trains a task; it is killed with SIGKILL mid-training and started again on the same folder.
  The job must end ``succeeded`` or ``failed``, never stay ``running``; the script reports how long that
  took and from which step it resumed.

Loopback only; images generated in code. Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import HEADERS, MODEL, Gateway, start_gateway
from models_store.tiny_model import TinyModelSpec, cached_tiny_model

ADAPTERS = [f"lora-{n}" for n in range(4)]
SLOTS = 2
ADAPTER_STD = 0.5  # random LoRA B matrices this large make each adapter answer differently
PROMPT = [{"role": "user", "content": "Name three colours."}]
FAILED: list[str] = []


def check(ok: bool, what: str) -> None:
    print(f"  [{'ok' if ok else 'FAIL'}] {what}", flush=True)
    if not ok:
        FAILED.append(what)


def make_adapters(model_dir: Path, root: Path) -> dict[str, Path]:
    from tests.support.export_model import make_adapter

    return {
        name: make_adapter(model_dir, root / name, seed=n + 1, std=ADAPTER_STD)
        for n, name in enumerate(ADAPTERS)
    }


def ask(http: httpx.Client, model: str, max_tokens: int = 8) -> str:
    body = {"model": model, "messages": PROMPT, "max_tokens": max_tokens, "temperature": 0}
    response = http.post("/v1/chat/completions", json=body)
    response.raise_for_status()
    return str(response.json()["choices"][0]["message"]["content"])


def engine_adapters(engine_url: str) -> list[str]:
    served = httpx.get(engine_url + "/v1/models", timeout=10).json()["data"]
    return sorted(m["id"] for m in served if m.get("parent"))


# -- LRU eviction ----------------------------------------------------------------------------------------
def scenario_lru(gw: Gateway, engine_url: str) -> dict[str, str]:
    print("\nLRU eviction: 4 adapters, 2 engine slots", flush=True)
    http = httpx.Client(base_url=gw.url, headers=HEADERS, timeout=120)
    first = {name: ask(http, name) for name in ADAPTERS}
    base = ask(http, MODEL)
    most_held, mismatches = 0, 0
    started = time.monotonic()
    for _ in range(3):
        for name in [*ADAPTERS, *reversed(ADAPTERS)]:
            mismatches += ask(http, name) != first[name]
            most_held = max(most_held, len(engine_adapters(engine_url)))
    sequential_s = time.monotonic() - started
    check(
        mismatches == 0,
        f"24 sequential answers each equal their adapter's first answer ({mismatches} differ)",
    )
    check(most_held <= SLOTS, f"the engine held at most {SLOTS} adapters (most seen: {most_held})")
    distinct = len(set(first.values()) | {base})
    check(
        distinct >= 3, f"adapters answer differently from each other and the base ({distinct} distinct of 5)"
    )

    async def together() -> list[tuple[str, str | int]]:
        async with httpx.AsyncClient(base_url=gw.url, headers=HEADERS, timeout=120) as client:

            async def one(name: str) -> tuple[str, str | int]:
                body = {"model": name, "messages": PROMPT, "max_tokens": 8, "temperature": 0}
                response = await client.post("/v1/chat/completions", json=body)
                if response.status_code != 200:
                    return name, response.status_code
                return name, str(response.json()["choices"][0]["message"]["content"])

            return await asyncio.gather(*(one(name) for name in ADAPTERS * 6))

    started = time.monotonic()
    results = asyncio.run(together())
    concurrent_s = time.monotonic() - started
    statuses = Counter(a if isinstance(a, int) else 200 for _, a in results)
    wrong = sum(1 for name, answer in results if isinstance(answer, str) and answer != first[name])
    check(
        statuses == Counter({200: 24}), f"24 concurrent requests over 4 adapters: statuses {dict(statuses)}"
    )
    check(wrong == 0, f"each concurrent answer came from its own adapter ({wrong} differ)")
    evictions = gw.log_path.read_text(errors="replace").count("unloaded least recently used adapter")
    print(
        f"  sequential: 24 requests in {sequential_s:.1f} s; concurrent: 24 in {concurrent_s:.1f} s; "
        f"{evictions} evictions logged"
    )
    return first


# -- engine SIGKILL under load ---------------------------------------------------------------------------
@dataclass
class KillRecord:
    events: list[tuple[float, str, int, str]] = field(default_factory=list)  # (t, model, status, detail)


async def load_client(
    url: str, models: list[str], record: KillRecord, stop: asyncio.Event, seed: int
) -> None:
    async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=60) as client:
        n = seed
        while not stop.is_set():
            model = models[n % len(models)]
            stream = n % 2 == 1
            body = {"model": model, "messages": PROMPT, "max_tokens": 8, "temperature": 0, "stream": stream}
            status, detail = 0, ""
            try:
                if stream:
                    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                        status = response.status_code
                        text = (await response.aread()).decode()
                        if status == 200 and '"error"' in text:
                            status, detail = -1, "stream error event: " + text.split('"code":', 1)[-1][:40]
                        elif status != 200:
                            detail = f"{response.headers.get('retry-after')}|{text[:120]}"
                else:
                    response = await client.post("/v1/chat/completions", json=body)
                    status = response.status_code
                    detail = (
                        f"{response.headers.get('retry-after')}|{response.text[:120]}"
                        if status != 200
                        else ""
                    )
            except httpx.HTTPError as exc:
                status, detail = -2, type(exc).__name__
            record.events.append((time.monotonic(), model, status, detail))
            n += 1
            if status != 200:
                await asyncio.sleep(0.2)  # a client that honours Retry-After would wait longer


def log_times(gw: Gateway, after: float) -> dict[str, float]:
    """Wall-clock times (epoch s) of the supervisor's messages after ``after``."""
    times: dict[str, float] = {}
    day = time.strftime("%Y-%m-%d")
    for line in gw.log_path.read_text(errors="replace").splitlines():
        found = re.match(r"\[vlmgw (\d\d:\d\d:\d\d)\] (.*)", line)
        if not found:
            continue
        stamp = time.mktime(time.strptime(f"{day} {found.group(1)}", "%Y-%m-%d %H:%M:%S"))
        if stamp + 1 < after:
            continue
        for key, marker in (
            ("exited", "engine exited"),
            ("spawned", "starting engine"),
            ("ready", "engine ready after"),
        ):
            if marker in found.group(2):
                times.setdefault(key, stamp)
    return times


def engine_phases(gw: Gateway, after: float) -> str:
    """When each vLLM process of the restarted engine logged its first line, from the engine's log: the
    API server, the engine core and the worker are three Python processes, each importing torch and
    vLLM (the CPU platform forces the ``spawn`` start method, so nothing is inherited)."""
    firsts: dict[str, float] = {}
    for path in (gw.data_dir / "logs").glob("engine-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            found = re.match(r"\((APIServer|EngineCore|Worker)[^)]*\) \w+ (\d\d-\d\d \d\d:\d\d:\d\d)", line)
            if not found:
                continue
            year = time.strftime("%Y")
            stamp = time.mktime(time.strptime(f"{year}-{found.group(2)}", "%Y-%m-%d %H:%M:%S"))
            if stamp + 1 >= after:
                firsts.setdefault(found.group(1), stamp)
                if "Starting vLLM" in line or "startup complete" in line:
                    firsts.setdefault("serving", stamp)
    return ", ".join(f"{k} +{v - after:.0f} s" for k, v in sorted(firsts.items(), key=lambda kv: kv[1]))


def scenario_kill(gw: Gateway, engine_url: str, first: dict[str, str]) -> None:
    print("\nengine SIGKILL under load (8 clients)", flush=True)
    http = httpx.Client(base_url=gw.url, headers=HEADERS, timeout=120)
    warm = ADAPTERS[:SLOTS]
    for name in warm:
        ask(http, name)
    had = engine_adapters(engine_url)
    check(had == sorted(warm), f"before the kill the engine holds {had}")
    record = KillRecord()

    async def run() -> tuple[float, float, float]:
        stop = asyncio.Event()
        clients = [
            asyncio.create_task(load_client(gw.url, [MODEL, *warm], record, stop, i)) for i in range(8)
        ]
        await asyncio.sleep(8)
        killed_at, killed_wall = time.monotonic(), time.time()
        os.kill(gw.engine_pid(), signal.SIGKILL)
        deadline = killed_at + 600
        recovered = None
        while time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            ok_after = [t for t, _, s, _ in record.events if s == 200 and t > killed_at + 1]
            failed = [t for t, _, s, _ in record.events if s != 200 and t > killed_at]
            if failed and ok_after and min(ok_after) > min(failed):
                recovered = min(ok_after)
                break
        await asyncio.sleep(8)  # keep the load on a little after recovery
        stop.set()
        await asyncio.gather(*clients)
        return killed_at, killed_wall, (recovered or float("nan"))

    killed_at, killed_wall, recovered = asyncio.run(run())
    after = [e for e in record.events if e[0] > killed_at]
    failures = [e for e in after if e[2] != 200]
    kinds = Counter((s, d.split("|")[0] if s > 0 else d) for _, _, s, d in failures)
    bad = [e for e in failures if e[2] != 503 and e[2] != -1]
    no_retry_after = [e for e in failures if e[2] == 503 and not e[3].split("|")[0].isdigit()]
    check(bool(failures), f"requests failed while the engine was down: {len(failures)}")
    check(not bad, f"every failure was a 503 (or an error event in a stream that had begun): {dict(kinds)}")
    check(not no_retry_after, f"every 503 carried Retry-After ({len(no_retry_after)} without)")
    recovery_s = recovered - killed_at
    check(recovery_s < 60, f"answers came back {recovery_s:.1f} s after the kill (target < 60 s)")
    times = log_times(gw, killed_wall)
    steps = []
    for key in ("exited", "spawned", "ready"):
        if key in times:
            steps.append(f"{key} +{times[key] - killed_wall:.0f} s")
    print(f"  timeline from the gateway's log (1 s resolution): {', '.join(steps)}")
    print(f"  first log line of each vLLM process after the kill: {engine_phases(gw, killed_wall)}")
    deadline = time.monotonic() + 30
    while engine_adapters(engine_url) != had and time.monotonic() < deadline:
        time.sleep(0.5)
    check(
        engine_adapters(engine_url) == had,
        f"the adapters it had are loaded again: {engine_adapters(engine_url)}",
    )
    again = {name: ask(http, name) for name in warm}
    check(all(again[n] == first[n] for n in warm), "and answer as before the kill")
    during = Counter(s for _, _, s, _ in after)
    print(f"  after the kill: {sum(during.values())} requests, by status {dict(during)}")


# -- gateway SIGKILL during training ----------------------------------------------------------------------
def scenario_training(engine_url: str, model_dir: Path, work: Path) -> None:
    from tests.support.platform_task import build_colour_task

    print("\ngateway SIGKILL during training (SQLite, 5 s lease)", flush=True)
    data = work / "training-gateway"
    env = {"VLMGW_JOB_LEASE_TTL_S": "5"}
    first = start_gateway(data, engine_url=engine_url, model_dir=model_dir, env=env)
    first.wait_healthy(300)
    http = httpx.Client(base_url=first.url, headers=HEADERS, timeout=60)
    task = asyncio.run(build_colour_task(http, HEADERS, work / "task-images"))
    body = {"hyperparameters": {"max_steps": 200, "checkpoint_every": 20}}
    started = http.post(f"/vlm/v2/task/{task['id']}/train/", json=body)
    check(started.status_code == 201, f"training started: {started.status_code} {started.text[:300]}")
    job_id = started.json()["id"]

    def job(gw: Gateway) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(
            f"{gw.url}/vlm/v2/training-job/{job_id}/", headers=HEADERS, timeout=30
        ).json()
        return result

    deadline = time.monotonic() + 300
    while job(first)["step"] < 45 and time.monotonic() < deadline:
        time.sleep(0.3)
    killed_step = job(first)["step"]
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait(10)
    killed_at = time.monotonic()
    second = start_gateway(data, engine_url=engine_url, model_dir=model_dir, env=env)
    try:
        second.wait_healthy(300)
        seen = []
        while time.monotonic() - killed_at < 600:
            state = job(second)
            if not seen or seen[-1][1] != state["status"]:
                seen.append((round(time.monotonic() - killed_at, 1), state["status"], state["step"]))
            if state["status"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.5)
        print(f"  killed at step {killed_step}; after the kill (s, status, step): {seen}")
        check(seen[-1][1] in ("succeeded", "failed"), f"the job ended {seen[-1][1]}, not stuck running")
        events = httpx.get(
            f"{second.url}/vlm/v2/training-job/{job_id}/events/?page_size=500", headers=HEADERS, timeout=30
        ).json()["results"]
        resumed = [e["data"].get("resumed_from_step") for e in events if e["data"].get("event") == "start"]
        print(f"  training starts (resumed_from_step): {resumed}")
        check(len(resumed) == 2 and resumed[1] is not None and resumed[1] >= 20, "resumed from a checkpoint")
    finally:
        second.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", default=["lru", "kill", "training"])
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="vlmgw-faults-"))
    model_dir = cached_tiny_model(TinyModelSpec(pretrain_steps=300))
    adapters = make_adapters(model_dir, work / "adapters")
    gw = start_gateway(
        work / "gateway", model_dir=model_dir, adapters=adapters, env={"VLMGW_ENGINE_MAX_LORAS": str(SLOTS)}
    )
    try:
        print(f"gateway + engine healthy after {gw.wait_healthy(900):.0f} s (log: {gw.log_path})", flush=True)
        engine_url = str(gw.health()["engines"][0]["url"])
        first: dict[str, str] = {}
        if "lru" in args.scenarios or "kill" in args.scenarios:
            first = scenario_lru(gw, engine_url)
        if "kill" in args.scenarios:
            scenario_kill(gw, engine_url, first)
        if "training" in args.scenarios:
            scenario_training(engine_url, model_dir, work)
    finally:
        gw.stop()
    print(f"\n{len(FAILED)} check(s) failed" + (": " + "; ".join(FAILED) if FAILED else ""))
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
