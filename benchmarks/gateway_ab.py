"""Two (or more) checkouts of the gateway side by side: CPU per request against the bare proxy, one run.

    uv run python benchmarks/gateway_ab.py --trees /path/to/old,/path/to/new [--kind whole|stream|image]
                                           [--conc 8] [--rounds 4] [--secs 3]

A quicker, narrower sibling of ``gateway_overhead.py`` for A/B work on the gateway's own cost: the fast
stand-in engine, the bare proxy, and one gateway per checkout (each started with that checkout's code:
``python -m gateway serve`` with the checkout as working directory; a checkout without its own ``.venv``
uses this interpreter), blocks alternating in a rotating order round after round, so a shared machine's
drift hits all alike. Prints user and system CPU per request of each process (from /proc) and the total as
a ratio to the bare proxy's in the same run. Pinning as in ``gateway_overhead.py``: the proxies on the last
CPU, the engine and the load generator on the others. Loopback only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.gateway_overhead import (  # noqa: E402
    KEY,
    MODEL,
    Sample,
    free_port,
    http_request,
    png_200kb,
    request_body,
    run_block,
    run_on_uvloop,
    wait_ready,
)


def cpu_s(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


async def main_async(args: argparse.Namespace) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    proxy_cpus, engine_cpus = ({allowed[-1]}, set(allowed[:-1])) if len(allowed) >= 2 else (None, None)
    if engine_cpus:
        os.sched_setaffinity(0, engine_cpus)
    work = Path(tempfile.mkdtemp(prefix="vlmgw-ab-"))
    procs: list[subprocess.Popen[bytes]] = []

    def start(cmd: list[str], cwd: Path, log: str, cpus: set[int] | None) -> subprocess.Popen[bytes]:
        def place() -> None:
            if cpus:
                os.sched_setaffinity(0, cpus)

        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=(work / log).open("wb"), stderr=subprocess.STDOUT, preexec_fn=place
        )
        procs.append(proc)
        return proc

    try:
        engine_port = free_port()
        engine_cmd = [
            sys.executable,
            str(ROOT / "benchmarks" / "fast_engine.py"),
            str(engine_port),
            "--model",
            MODEL,
        ]
        start(engine_cmd, ROOT, "engine.log", engine_cpus)
        if not await wait_ready(engine_port, "/v1/models", 60):
            raise SystemExit(f"the engine did not start; see {work / 'engine.log'}")
        url = f"http://127.0.0.1:{engine_port}"
        targets: list[tuple[str, int, subprocess.Popen[bytes]]] = []
        port = free_port()
        proxy = [sys.executable, str(ROOT / "benchmarks" / "bare_proxy.py"), str(port), url]
        targets.append(("proxy", port, start(proxy, ROOT, "proxy.log", proxy_cpus)))
        for i, tree in enumerate(Path(t).resolve() for t in args.trees.split(",")):
            python = tree / ".venv" / "bin" / "python"
            port = free_port()
            cmd = [str(python) if python.exists() else sys.executable, "-m", "gateway", "serve",
                   "--engine-url", url, "--port", str(port), "--data-dir", str(work / f"gw{i}"),
                   "--api-key", KEY, "--log-level", "warning"]  # fmt: skip
            targets.append((f"gateway {tree}", port, start(cmd, tree, f"gw{i}.log", proxy_cpus)))
        for name, port, proc in targets:
            if not await wait_ready(port, "/v1/models", 180, proc):
                raise SystemExit(f"{name} did not start; see the logs in {work}")
        body = request_body(args.kind, png_200kb() if args.kind == "image" else b"")
        totals = {name: [0, 0.0, 0.0, 0.0] for name, _, _ in targets}  # count, user s, system s, wall s
        for _name, port, _proc in targets:  # warm-up, not recorded
            await run_block(port, http_request(port, body), args.kind, args.conc, 0.5, Sample())
        for r in range(args.rounds):
            for name, port, proc in targets[r % len(targets) :] + targets[: r % len(targets)]:
                sample = Sample()
                user0, sys0 = cpu_s(proc.pid)
                await run_block(port, http_request(port, body), args.kind, args.conc, args.secs, sample)
                user1, sys1 = cpu_s(proc.pid)
                if sample.errors:
                    raise SystemExit(f"{name}: {sample.errors} failed answers, last: {sample.last_error}")
                total = totals[name]
                total[0] += sample.count
                total[1] += user1 - user0
                total[2] += sys1 - sys0
                total[3] += sample.wall
        print(
            f"{args.kind} c={args.conc}, {args.rounds} rounds of {args.secs} s, load {os.getloadavg()[0]:.2f}"
        )
        base = None
        for name, (count, user, system, wall) in totals.items():
            cpu_ms = (user + system) * 1e3 / count
            base = base or cpu_ms
            print(
                f"{name:<40} {count / wall:8.0f} req/s  user {user * 1e3 / count:.4f}  "
                f"sys {system * 1e3 / count:.4f}  cpu {cpu_ms:.4f} ms  {cpu_ms / base:.2f}x the proxy"
            )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trees", default=str(ROOT), help="gateway checkouts, comma-separated")
    parser.add_argument("--kind", choices=["whole", "stream", "image"], default="whole")
    parser.add_argument("--conc", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--secs", type=float, default=3.0, help="seconds per target per round")
    run_on_uvloop(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
