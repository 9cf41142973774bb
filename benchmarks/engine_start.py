"""How long vLLM (CPU build, tiny model) takes from spawn to a healthy ``/health``, and where the time goes.

    flock /work/.locks/vllm uv run python benchmarks/engine_start.py --runs 2

An engine restart after a crash costs exactly this, so it bounds how fast the gateway can recover. vLLM's
CPU platform runs three Python processes started one after another with the ``spawn`` method (API server,
engine core, worker), each importing torch and vLLM; the script prints when each logged its first line.
``--variant single`` also measures ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` (engine core inside the API server).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.supervisor import EngineSpec, free_port
from models_store.tiny_model import TinyModelSpec, cached_tiny_model


def start_once(model_dir: Path, work: Path, env_extra: dict[str, str]) -> dict[str, float]:
    spec = EngineSpec(
        model=str(model_dir),
        served_name="tiny",
        port=free_port(),
        max_loras=2,
        extra_args=["--max-model-len", "2048"],
    )
    log_path = work / f"engine-{spec.port}.log"
    env = {**spec.environment(), "VLLM_CPU_KVCACHE_SPACE": "1", **env_extra}
    started = time.monotonic()
    wall = time.time()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            spec.command(), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(log_path.read_text()[-3000:])
            try:
                if httpx.get(spec.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        healthy = time.monotonic() - started
        t0 = time.monotonic()
        body = {
            "model": "tiny",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 16,
            "min_tokens": 16,
        }
        for _ in range(20):
            httpx.post(spec.url + "/v1/chat/completions", json=body, timeout=60).raise_for_status()
        per_request_ms = (time.monotonic() - t0) / 20 * 1000
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    result = {"healthy_s": healthy, "request_ms": per_request_ms}
    year = time.strftime("%Y")
    for line in log_path.read_text(errors="replace").splitlines():
        found = re.match(r"\((APIServer|EngineCore|Worker)[^)]*\) \w+ (\d\d-\d\d \d\d:\d\d:\d\d)", line)
        if found:
            stamp = time.mktime(time.strptime(f"{year}-{found.group(2)}", "%Y-%m-%d %H:%M:%S"))
            result.setdefault(found.group(1), stamp - wall)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--variant", nargs="*", default=["default", "single"])
    args = parser.parse_args()
    model_dir = cached_tiny_model(TinyModelSpec(pretrain_steps=300))
    work = Path(tempfile.mkdtemp(prefix="vlmgw-engine-start-"))
    variants = {"default": {}, "single": {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}}
    print(
        "| variant | run | healthy after s | first line: API server / engine core / worker (s) | ms/request |"
    )
    print("|---|---|---|---|---|")
    for run in range(args.runs):
        for name in args.variant:
            r = start_once(model_dir, work, variants[name])
            lines = " / ".join(
                f"{r[k]:.0f}" if k in r else "-" for k in ("APIServer", "EngineCore", "Worker")
            )
            print(
                f"| {name} | {run + 1} | {r['healthy_s']:.1f} | {lines} | {r['request_ms']:.0f} |", flush=True
            )


if __name__ == "__main__":
    main()
