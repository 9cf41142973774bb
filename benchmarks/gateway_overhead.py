"""Gateway overhead: the same chat requests sent directly to vLLM and through the gateway, in one run.

Starts one vLLM server (CPU build) on the tiny model and one gateway in front of it (``--engine-url``), then
for concurrency 1 and 16, non-streaming and streaming, alternates blocks of identical requests to both
targets (so drift in the machine's speed hits both alike) and prints p50/p99 latency, time to first token,
requests per second, and the gateway/direct ratios.

    uv run python benchmarks/gateway_overhead.py [--rounds 3] [--requests 48]

Only loopback traffic. Targets (issue 2): the gateway adds < 2 ms at p50 and < 5 % to throughput.

Placement matters on small machines: vLLM's CPU engine binds its compute thread to a core, and anything
else scheduled on that core stalls every forward pass. By default the gateway and this load generator are
pinned together to the last CPU (``--pin-cpu -1``; ``--pin-cpu none`` to let the OS place them), so the
comparison measures the proxy, not scheduler luck. The ``gw cpu ms/req`` column is the gateway process's
own CPU time (user + system, from /proc) divided by the requests it served in that mode.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.supervisor import EngineSpec, VLLMSupervisor, free_port
from models_store.tiny_model import TinyModelSpec, cached_tiny_model

MODEL = "tiny"
TOKENS = 16


def request_body(stream: bool) -> dict[str, object]:
    body: dict[str, object] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Describe the image in one sentence."}],
        "max_tokens": TOKENS,
        "min_tokens": TOKENS,
        "temperature": 0,
    }
    if stream:
        body["stream"] = True
    return body


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    wall: float = 0.0
    count: int = 0
    cpu_s: float = 0.0


async def one_request(http: httpx.AsyncClient, url: str, body: bytes, stream: bool, out: Sample) -> None:
    started = time.perf_counter()
    if not stream:
        resp = await http.post(url, content=body, headers={"content-type": "application/json"})
        resp.raise_for_status()
        out.latencies.append(time.perf_counter() - started)
        return
    first: float | None = None
    async with http.stream("POST", url, content=body, headers={"content-type": "application/json"}) as resp:
        resp.raise_for_status()
        async for line in resp.aiter_lines():
            if (
                first is None
                and line.startswith("data:")
                and '"content":"' in line
                and '"content":""' not in line
            ):
                first = time.perf_counter() - started
    out.latencies.append(time.perf_counter() - started)
    out.ttfts.append(first if first is not None else float("nan"))


async def run_block(
    http: httpx.AsyncClient, base: str, n: int, concurrency: int, stream: bool, out: Sample
) -> None:
    url = base + "/v1/chat/completions"
    body = msgspec.json.encode(request_body(stream))
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            await one_request(http, url, body, stream, out)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    out.wall += time.perf_counter() - started
    out.count += n


def pct(values: list[float], q: float) -> float:
    ordered = sorted(v for v in values if v == v)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(sample: Sample) -> dict[str, float]:
    return {
        "p50_ms": pct(sample.latencies, 0.5) * 1000,
        "p99_ms": pct(sample.latencies, 0.99) * 1000,
        "ttft_p50_ms": pct(sample.ttfts, 0.5) * 1000 if sample.ttfts else float("nan"),
        "rps": sample.count / sample.wall,
        "cpu_ms": sample.cpu_s * 1000 / sample.count,
    }


def process_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of one process (0 when not on Linux or no pid)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    direct: str, gateway: str, rounds: int, requests: int, gateway_pid: int | None = None
) -> list[tuple[str, dict, dict]]:
    rows = []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        for concurrency in (1, 16):
            for stream in (False, True):
                n = requests if concurrency == 1 else requests * 4
                samples = {"direct": Sample(), "gateway": Sample()}
                for base in (direct, gateway):  # warm-up, not recorded
                    await run_block(http, base, concurrency * 2, concurrency, stream, Sample())
                for _ in range(rounds):
                    for name, base in (("direct", direct), ("gateway", gateway)):
                        cpu_before = process_cpu_s(gateway_pid)
                        await run_block(http, base, n, concurrency, stream, samples[name])
                        samples[name].cpu_s += process_cpu_s(gateway_pid) - cpu_before
                mode = f"c={concurrency:<2} {'stream' if stream else 'non-stream'}"
                rows.append((mode, summary(samples["direct"]), summary(samples["gateway"])))
                print_row(*rows[-1], flush=True)
    return rows


HEADER = (
    f"{'mode':<16} {'target':<8} {'p50 ms':>8} {'p99 ms':>8} {'ttft p50':>9} {'req/s':>7}   "
    f"{'p50 +ms':>8} {'p99 +ms':>8} {'ttft +ms':>9} {'req/s ratio':>11} {'gw cpu ms/req':>13}"
)


def fmt_target(mode: str, target: str, r: dict[str, float]) -> str:
    figures = f"{r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {r['ttft_p50_ms']:9.1f} {r['rps']:7.1f}"
    return f"{mode:<16} {target:<8} {figures}"


def print_row(mode: str, d: dict[str, float], g: dict[str, float], flush: bool = False) -> None:
    deltas = (
        f"{g['p50_ms'] - d['p50_ms']:+8.2f} {g['p99_ms'] - d['p99_ms']:+8.2f} "
        f"{g['ttft_p50_ms'] - d['ttft_p50_ms']:+9.2f} {g['rps'] / d['rps']:11.3f} {g['cpu_ms']:13.2f}"
    )
    print(fmt_target(mode, "direct", d))
    print(fmt_target("", "gateway", g) + "   " + deltas, flush=flush)


def wait_http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} not ready after {timeout_s} s")


async def main_async(args: argparse.Namespace) -> None:
    model_dir = cached_tiny_model(TinyModelSpec(pretrain_steps=300))
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    work = Path(tempfile.mkdtemp(prefix="vlmgw-bench-"))
    spec = EngineSpec(
        model=str(model_dir), served_name=MODEL, port=free_port(), log_path=work / "engine.log",
        extra_args=["--max-model-len", "2048"],
    )  # fmt: skip
    engine = VLLMSupervisor(spec, say=lambda m: print(f"[engine] {m}", file=sys.stderr))
    await engine.start()
    gw_port = free_port()
    pin = pinned_cpu(args.pin_cpu)
    if pin is not None:  # the engine is already spawned; only the gateway and this process move
        os.sched_setaffinity(0, {pin})
    gateway = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--engine-url", spec.url, "--port", str(gw_port),
         "--data-dir", str(work), "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=(work / "gateway.log").open("wb"),
    )  # fmt: skip
    try:
        if not await engine.wait_ready(900):
            raise SystemExit("engine did not start")
        gateway_url = f"http://127.0.0.1:{gw_port}"
        await asyncio.to_thread(wait_http, gateway_url + "/health", 60)
        print(f"vLLM {spec.url} vs gateway {gateway_url}; {TOKENS} tokens per answer; "
              f"{args.rounds} alternating rounds; {os.cpu_count()} CPUs", flush=True)  # fmt: skip
        print(f"gateway and load generator pinned to CPU {pin}" if pin is not None else "no pinning")
        print(HEADER)
        await measure(spec.url, gateway_url, args.rounds, args.requests, gateway.pid)
    finally:
        gateway.terminate()
        gateway.wait(30)
        await engine.stop()


def pinned_cpu(option: str) -> int | None:
    """The CPU to pin the gateway and load generator to, or None (option 'none', or one CPU only)."""
    cpus = sorted(os.sched_getaffinity(0))
    if option == "none" or len(cpus) < 2:
        return None
    return cpus[int(option)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating direct/gateway blocks per mode")
    parser.add_argument(
        "--requests", type=int, default=48, help="requests per block at concurrency 1 (x4 at 16)"
    )
    parser.add_argument(
        "--pin-cpu", default="-1", help="index into the allowed CPUs for gateway + load generator, or 'none'"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
