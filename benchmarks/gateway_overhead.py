"""Gateway overhead beside its peers: direct, a bare proxy, LiteLLM and vlm-gateway, in one run.

    uv run python benchmarks/gateway_overhead.py [--engine fast|vllm] [--rounds 3] [--block-s 2]
                                                 [--litellm auto|off|PATH_TO_LITELLM]
                                                 [--modes whole,stream,image] [--no-litestar]

Starts an engine (``fast``: ``benchmarks/fast_engine.py``, a stand-in so cheap that the proxy is what is
measured; ``vllm``: a real vLLM CPU server on the tiny model), then in front of it, each as its own process:

- ``proxy``: ``benchmarks/bare_proxy.py``, a bare pass-through (uvicorn + aiohttp, nothing else): the floor;
- ``litestar``: ``benchmarks/litestar_floor.py``, one Litestar route that validates the body as the gateway
  does and forwards it: the share of the cost that is the web framework's;
- ``litellm``: LiteLLM's proxy, installed by this script into a throw-away virtual environment under
  ``~/.cache/vlmgw-bench`` (``uv venv`` + ``uv pip install litellm[proxy]``; never a project dependency).
  When it cannot be installed or started, the script says so and goes on without it;
- ``gateway``: ``vlmgw serve --engine-url`` with a static API key (every request authenticated).

Workloads: a whole answer, a 20-event stream, and a whole answer to a request carrying one 200 KB PNG as
a data URI; each at concurrency 1 (latency) and 8 (throughput). Blocks are time-boxed (``--block-s``) and
alternate between the targets, in a rotating order, round after round, so drift in a shared machine's speed
hits all alike. Every answer is checked (status 200, a complete body); a target with failures says so.

Placement: on a machine with two or more CPUs the proxies run pinned to the last CPU and the engine and
this load generator to the others, so the proxy's CPU is its own and ``cpu ms`` (user + system time of the
proxy's whole process tree, from /proc, per request) is what it costs. The load generator is a minimal
HTTP/1.1 keep-alive client on raw asyncio streams, cheaper than any proxy it measures. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.supervisor import free_port  # noqa: E402
from tests.support.health import stop_group  # noqa: E402

MODEL = "tiny"
KEY = "bench-key"
EVENTS = 20
TOKENS = 16
LITELLM_SPEC = "litellm[proxy]==1.106.12"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vlmgw-bench"


# ---------------------------------------------------------------- requests


def png_200kb(seed: int = 0) -> bytes:
    """A photo-like PNG of about 200 KB (smooth gradients plus noise), generated, never downloaded."""
    from PIL import Image

    rng = random.Random(seed)
    width, height = 400, 300
    noise = bytes(rng.randrange(40) for _ in range(width * height * 3))
    image = Image.frombytes("RGB", (width, height), noise)
    gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    image = Image.blend(gradient, image, 0.5)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def request_body(kind: str, image: bytes) -> bytes:
    content: object = "Describe the image in one sentence."
    if kind == "image":
        uri = "data:image/png;base64," + __import__("base64").b64encode(image).decode()
        content = [
            {"type": "text", "text": "Describe the image."},
            {"type": "image_url", "image_url": {"url": uri}},
        ]
    body: dict[str, object] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": TOKENS,
        "min_tokens": TOKENS,
        "temperature": 0,
    }
    if kind == "stream":
        body["stream"] = True
    return msgspec.json.encode(body)


def http_request(port: int, body: bytes) -> bytes:
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {KEY}\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# ---------------------------------------------------------------- load generator


class BadAnswer(Exception):
    pass


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    """One HTTP/1.1 response's body (content-length or chunked); raises BadAnswer unless status 200."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            parts.append(data[:-2])
        body = b"".join(parts)
    else:
        at = lower.find(b"content-length:")
        length = int(lower[at + 15 : lower.find(b"\r\n", at)]) if at >= 0 else 0
        body = await reader.readexactly(length)
    if status != 200:
        raise BadAnswer(f"HTTP {status}: {body[:200]!r}")
    return body


def complete(kind: str, body: bytes) -> bool:
    if kind == "stream":  # vLLM may merge tokens into fewer events: ask for the end, not a count
        return body.rstrip().endswith(b"data: [DONE]") and b'"finish_reason":"' in body
    return b'"choices":[' in body.replace(b" ", b"") and b'"content"' in body


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    count: int = 0
    errors: int = 0
    cpu_s: float = 0.0
    last_error: str = ""


async def run_block(
    port: int, request: bytes, kind: str, concurrency: int, seconds: float, out: Sample
) -> None:
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(request)
                try:
                    body = await read_answer(reader)
                    ok = complete(kind, body)
                except BadAnswer as exc:
                    ok, out.last_error = False, str(exc)
                if ok:
                    out.latencies.append(time.perf_counter() - started)
                    out.count += 1
                else:
                    out.errors += 1
                    out.last_error = out.last_error or f"incomplete answer: {body[-200:]!r}"
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    out.wall += time.perf_counter() - started


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# ---------------------------------------------------------------- processes


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and all its live descendants (decode workers, uvicorn workers)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0.0)
        todo.extend(p for p, parent in parents.items() if parent == current)
    return total


@dataclass
class Target:
    name: str
    port: int
    pid: int | None  # the process whose tree's CPU is counted (None: direct)


def spawn(
    cmd: list[str], log: Path, cpus: set[int] | None, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    def place() -> None:
        os.setsid()
        if cpus:
            os.sched_setaffinity(0, cpus)

    return subprocess.Popen(
        cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, preexec_fn=place, env=env or os.environ.copy()
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    stop_group(proc, grace_s=20, kill_wait_s=5)


async def wait_ready(
    port: int, path: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None
) -> bool:
    deadline = time.monotonic() + timeout_s
    request = f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {KEY}\r\n\r\n".encode()
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            await asyncio.wait_for(read_answer(reader), 5)
            writer.close()
            return True
        except (TimeoutError, OSError, BadAnswer, asyncio.IncompleteReadError):
            await asyncio.sleep(0.5)
    return False


def litellm_python(option: str, say: Callable[[str], None]) -> Path | None:
    """The ``litellm`` executable: given, or installed into a throw-away venv under the cache; None if not."""
    if option == "off":
        return None
    if option != "auto":
        return Path(option)
    venv = CACHE / "litellm-venv"
    exe = venv / "bin" / "litellm"
    if exe.exists():
        return exe
    uv = shutil.which("uv")
    if uv is None:
        say("LiteLLM: `uv` not found, skipping LiteLLM")
        return None
    say(f"LiteLLM: installing {LITELLM_SPEC} into {venv} (once)")
    try:
        subprocess.run([uv, "venv", "--python", sys.executable, str(venv)], check=True, capture_output=True)
        subprocess.run(
            [uv, "pip", "install", "--python", str(venv / "bin" / "python"), LITELLM_SPEC],
            check=True, capture_output=True, timeout=900,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        err = getattr(exc, "stderr", b"") or b""
        say(f"LiteLLM: could not be installed ({err.decode(errors='replace')[-300:].strip()}); skipping it")
        shutil.rmtree(venv, ignore_errors=True)
        return None
    return exe if exe.exists() else None


def litellm_config(work: Path, engine_port: int) -> Path:
    config = work / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: http://127.0.0.1:{engine_port}/v1\n"
        "      api_key: none\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  drop_params: true\n"
        "general_settings:\n"
        f"  master_key: {KEY}\n"
    )
    return config


def litellm_env() -> dict[str, str]:
    """No network beyond loopback: the local model price map, no telemetry."""
    env = os.environ.copy()
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False", LITELLM_LOG="ERROR",
               DISABLE_ADMIN_UI="True", NO_DOCS="True")  # fmt: skip
    env.pop("DATABASE_URL", None)
    return env


@contextmanager
def engine_process(
    kind: str, work: Path, cpus: set[int] | None
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    if kind == "fast":
        cmd = [sys.executable, str(ROOT / "benchmarks" / "fast_engine.py"), str(port), "--model", MODEL,
               "--events", str(EVENTS)]  # fmt: skip
    else:
        from models_store.tiny_model import TinyModelSpec, cached_tiny_model

        model_dir = cached_tiny_model(TinyModelSpec(pretrain_steps=300))
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
               "--served-model-name", MODEL, "--host", "127.0.0.1", "--port", str(port),
               "--max-model-len", "2048", "--dtype", "bfloat16"]  # fmt: skip
    env = os.environ.copy()
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    proc = spawn(cmd, work / "engine.log", cpus, env)
    try:
        yield port, proc
    finally:
        stop(proc)


# ---------------------------------------------------------------- measuring

MODES = [("whole", 1), ("whole", 8), ("stream", 1), ("stream", 8), ("image", 1), ("image", 8)]


async def measure(
    targets: list[Target], rounds: int, block_s: float, say: Callable[[str], None], modes: list[str]
) -> list[dict[str, object]]:
    image = png_200kb()
    say(f"image: {len(image)} bytes PNG; {rounds} rounds of {block_s} s blocks per target and mode")
    rows: list[dict[str, object]] = []
    for kind, concurrency in MODES:
        if kind not in modes:
            continue
        body = request_body(kind, image)
        samples = {t.name: Sample() for t in targets}
        for t in targets:  # warm-up, not recorded
            await run_block(
                t.port, http_request(t.port, body), kind, concurrency, min(0.5, block_s), Sample()
            )
        for r in range(rounds):
            order = targets[r % len(targets) :] + targets[: r % len(targets)]
            for t in order:
                before = tree_cpu_s(t.pid) if t.pid else 0.0
                await run_block(
                    t.port, http_request(t.port, body), kind, concurrency, block_s, samples[t.name]
                )
                if t.pid:
                    samples[t.name].cpu_s += tree_cpu_s(t.pid) - before
        direct = samples["direct"]
        for t in targets:
            s = samples[t.name]
            row: dict[str, object] = {
                "mode": f"{kind} c={concurrency}", "target": t.name, "n": s.count, "errors": s.errors,
                "p50": pct(s.latencies, 0.5) * 1e3, "p99": pct(s.latencies, 0.99) * 1e3,
                "rps": s.count / s.wall if s.wall else 0.0,
                "cpu": s.cpu_s * 1e3 / s.count if s.count and t.pid else float("nan"),
            }  # fmt: skip
            row["p50+"] = row["p50"] - pct(direct.latencies, 0.5) * 1e3  # type: ignore[operator]
            row["p99+"] = row["p99"] - pct(direct.latencies, 0.99) * 1e3  # type: ignore[operator]
            rows.append(row)
            if s.errors:
                say(f"{t.name} {kind} c={concurrency}: {s.errors} failed answers, last: {s.last_error}")
        print_mode(rows[-len(targets) :])
    return rows


def print_mode(rows: list[dict[str, object]]) -> None:
    proxy = next((r for r in rows if r["target"] == "proxy"), None)
    for r in rows:
        vs = ""
        if proxy is not None and proxy["rps"] and proxy["cpu"] and r["target"] not in ("direct", "proxy"):
            vs = f"{r['rps'] / proxy['rps']:8.2f} {r['cpu'] / proxy['cpu']:8.2f}"  # type: ignore[operator]
        added = "" if r["target"] == "direct" else f"{r['p50+']:+8.2f} {r['p99+']:+8.2f}"
        print(
            f"| {r['mode']:<10} | {r['target']:<8} | {r['p50']:7.2f} | {r['p99']:7.2f} | {added:>17} | "
            f"{r['rps']:8.0f} | {r['cpu']:7.2f} | {vs:>17} | {r['errors']} |",
            flush=True,
        )


HEADER = (
    "| mode       | target   |  p50 ms |  p99 ms | added p50 / p99 ms | req/s    | cpu ms  "
    "| rps, cpu vs proxy | errors |"
)


async def main_async(args: argparse.Namespace) -> None:
    def say(message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    allowed = sorted(os.sched_getaffinity(0))
    proxy_cpus: set[int] | None = None
    engine_cpus: set[int] | None = None
    if args.pin and len(allowed) >= 2:
        proxy_cpus, engine_cpus = {allowed[-1]}, set(allowed[:-1])
        os.sched_setaffinity(0, engine_cpus)
    work = Path(tempfile.mkdtemp(prefix="vlmgw-bench-"))
    litellm = litellm_python(args.litellm, say)
    with ExitStack() as stack:
        engine_port, engine_proc = stack.enter_context(engine_process(args.engine, work, engine_cpus))
        if not await wait_ready(engine_port, "/v1/models", 900, engine_proc):
            raise SystemExit(f"the engine did not start; see {work / 'engine.log'}")
        engine_url = f"http://127.0.0.1:{engine_port}"
        targets = [Target("direct", engine_port, None)]
        launches = [
            (
                "proxy",
                [sys.executable, str(ROOT / "benchmarks" / "bare_proxy.py"), "{port}", engine_url],
                None,
            )
        ]
        floor = [sys.executable, str(ROOT / "benchmarks" / "litestar_floor.py"), "{port}", engine_url]
        if not args.no_litestar:
            launches.append(("litestar", floor, None))
        if litellm is not None:
            launches.append(("litellm", [str(litellm), "--config", str(litellm_config(work, engine_port)),
                                         "--host", "127.0.0.1", "--port", "{port}", "--num_workers", "1"],
                             litellm_env()))  # fmt: skip
        launches.append(("gateway", [sys.executable, "-m", "gateway", "serve", "--engine-url", engine_url,
                                     "--port", "{port}", "--data-dir", str(work / "gw"), "--api-key", KEY,
                                     "--log-level", "warning"], None))  # fmt: skip
        for name, cmd, env in launches:
            port = free_port()
            proc = spawn([c.replace("{port}", str(port)) for c in cmd], work / f"{name}.log", proxy_cpus, env)
            stack.callback(stop, proc)
            if await wait_ready(port, "/v1/models", 180, proc):
                targets.append(Target(name, port, proc.pid))
            elif name == "litellm":
                say(f"LiteLLM did not start; skipping it (log: {work / 'litellm.log'})")
            else:
                raise SystemExit(f"{name} did not start; see {work / (name + '.log')}")
        say(f"engine {args.engine} on {engine_url}; targets: {', '.join(t.name for t in targets)}")
        pinning = (
            f"proxies on CPU {sorted(proxy_cpus)}, engine + load on {sorted(engine_cpus)}"
            if proxy_cpus
            else "no pinning"
        )
        print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, {pinning}, engine: {args.engine}")
        print(HEADER)
        print("|---|---|---|---|---|---|---|---|---|")
        await measure(targets, args.rounds, args.block_s, say, args.modes.split(","))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=["fast", "vllm"], default="fast")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per mode")
    parser.add_argument("--block-s", type=float, default=2.0, help="seconds per target per round")
    parser.add_argument(
        "--litellm", default="auto", help="auto (install once into the cache), off, or a path"
    )
    parser.add_argument(
        "--modes", default="whole,stream,image", help="which workloads, comma-separated (default: all)"
    )
    parser.add_argument("--no-litestar", action="store_true", help="leave out the minimal Litestar route")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="let the OS place the processes")
    run_on_uvloop(main_async(parser.parse_args()))


def run_on_uvloop(main: Coroutine[Any, Any, None]) -> None:
    """Run the load generator on uvloop when installed: it must cost less than what it measures."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main)


if __name__ == "__main__":
    main()
