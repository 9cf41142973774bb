"""Cost of API-key checks per request: static key vs database key (cached, and checked every time).

Starts the gateway in-process with uvicorn on loopback (no engine: ``GET /v1/models`` answers an empty list),
on a fresh SQLite database in a temporary folder, and sends the same request with each kind of key in
alternating blocks. Prints requests/s and p50 latency, and each as a ratio to the static key in the same run.

    uv run python benchmarks/key_auth.py --requests 400 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from adapters.supervisor import free_port
from gateway.app import create_app
from gateway.db.connection import open_database
from gateway.db.keys import create_key
from gateway.settings import Settings

STATIC = "static-benchmark-key"


async def make_key(db_url: str) -> str:
    async with open_database(db_url):
        return (await create_key(user_name="bench", workspaces=["bench"])).key


def serve(settings: Settings, port: int) -> uvicorn.Server:
    app = create_app(settings, engines=[], say=lambda _m: None)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server


def block(client: httpx.Client, url: str, key: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.get(url, headers={"Authorization": f"Bearer {key}"})
        times.append(time.perf_counter() - start)
        assert response.status_code == 200, response.text
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    folder = Path(tempfile.mkdtemp(prefix="vlmgw-keybench-"))
    base = Settings(data_dir=folder, api_keys=[STATIC])
    key = asyncio.run(make_key(base.db_url))
    cached_port, uncached_port = free_port(), free_port()
    servers = [serve(base, cached_port), serve(base.replace(key_cache_ttl_s=0.0), uncached_port)]
    cases = {
        "static key": (cached_port, STATIC),
        "db key, cached (ttl 10 s)": (cached_port, key),
        "db key, checked each time": (uncached_port, key),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    with httpx.Client(timeout=10) as client:
        for port, k in cases.values():  # warm up
            block(client, f"http://127.0.0.1:{port}/v1/models", k, 20)
        for _ in range(args.rounds):
            for name, (port, k) in cases.items():
                samples[name] += block(client, f"http://127.0.0.1:{port}/v1/models", k, args.requests)
    base_p50 = statistics.median(samples["static key"])
    base_rps = len(samples["static key"]) / sum(samples["static key"])
    print("| key | p50 ms | req/s | p50 ratio | req/s ratio |\n|---|---|---|---|---|")
    for name, times in samples.items():
        p50, rps = statistics.median(times), len(times) / sum(times)
        print(f"| {name} | {p50 * 1000:.2f} | {rps:.0f} | {p50 / base_p50:.2f} | {rps / base_rps:.2f} |")
    for server in servers:
        server.should_exit = True


if __name__ == "__main__":
    main()
