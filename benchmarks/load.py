"""Bounded load on a real gateway + vLLM (CPU build, tiny model): many concurrent clients for a fixed time.

    flock /work/.locks/vllm uv run python benchmarks/load.py --clients 64 --duration 120

Starts ``vlmgw serve --model <tiny>`` (which spawns vLLM), warms it up with a few requests of each kind,
then runs ``--clients`` concurrent clients for ``--duration`` seconds; each loops over a mix of requests:
text, image (PNG data URI), video (MP4 data URI), streamed, structured (JSON Schema), and a platform CRUD
round (dataset, variable, image, sample created, read and deleted). It stops by itself, stops the gateway,
and prints errors by kind and status, latency percentiles per kind, and the gateway process's resident
memory after warm-up, during the run and at the end (flat means under 10 % growth). Loopback only.
Exit status 1 when any request failed with a 5xx or a transport error, or memory grew by 10 % or more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import (
    HEADERS,
    Gateway,
    chat_body,
    data_uri,
    mp4,
    percentile,
    png,
    start_gateway,
)
from models_store.tiny_model import TinyModelSpec, cached_tiny_model

KINDS = ("text", "image", "video", "stream", "structured", "crud")
WEIGHTS = (3, 3, 1, 2, 2, 1)


class Record:
    """Every request's kind, outcome and latency."""

    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.outcomes: Counter[tuple[str, str]] = Counter()

    def add(self, kind: str, outcome: str, seconds: float) -> None:
        self.outcomes[(kind, outcome)] += 1
        if outcome == "ok":
            self.latency[kind].append(seconds)


async def chat(http: httpx.AsyncClient, kind: str, media: dict[str, str]) -> str:
    body = chat_body(kind, media)
    if kind == "stream":
        async with http.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                await response.aread()
                return f"http {response.status_code}"
            events = [line async for line in response.aiter_lines() if line.startswith("data: ")]
        if not events or events[-1] != "data: [DONE]" or any('"error"' in e for e in events):
            return "stream broken"
        return "ok"
    response = await http.post("/v1/chat/completions", json=body)
    if response.status_code != 200:
        return f"http {response.status_code}"
    message = response.json()["choices"][0]["message"]["content"]
    if kind == "structured":
        json.loads(message)  # the gateway promises a parsing answer
    return "ok"


async def crud(http: httpx.AsyncClient, media: dict[str, str], n: int) -> str:
    """Create a dataset, a variable, an image and a sample; read the sample; delete all four."""
    steps: list[tuple[str, str, Any, int]] = []

    async def call(method: str, path: str, body: Any = None, want: int = 200) -> Any:
        response = await http.request(method, path, json=body)
        steps.append((method, path, body, response.status_code))
        if response.status_code != want:
            raise LookupError(f"http {response.status_code} on {method} {path.split('/')[3]}")
        json_body = response.headers.get("content-type", "").startswith("application/json")
        return response.json() if json_body else response.content

    try:
        dataset = await call("POST", "/vlm/v2/dataset/", {"name": f"load-{n}"}, 201)
        variable = await call(
            "POST", "/vlm/v2/variable/", {"dataset": dataset["id"], "name": "colour", "type": "string"}, 201
        )
        image = await call("POST", "/vlm/v2/image/", {"_base64": media["png_b64"]}, 201)
        image_id = image["records"][0]["id"] if "records" in image else image["id"]
        sample = await call(
            "POST", "/vlm/v2/sample/", {"dataset": dataset["id"], "image_ids": [image_id]}, 201
        )
        await call("GET", f"/vlm/v2/sample/{sample['id']}/")
        await call("GET", f"/vlm/v2/image/{image_id}/file/")
        await call("DELETE", f"/vlm/v2/sample/{sample['id']}/", want=204)
        await call("DELETE", f"/vlm/v2/variable/{variable['id']}/", want=204)
        await call("DELETE", f"/vlm/v2/dataset/{dataset['id']}/", want=204)
        await call("DELETE", f"/vlm/v2/image/{image_id}/", want=204)
    except LookupError as exc:
        return str(exc)
    return "ok"


async def client(
    url: str,
    media: dict[str, str],
    record: Record,
    until: float,
    seed: int,
    headers: dict[str, str] = HEADERS,
) -> None:
    """One client: requests of random kinds (seeded) one after another until ``until``."""
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as http:
        n = 0
        while time.monotonic() < until:
            kind = rng.choices(KINDS, WEIGHTS)[0]
            started = time.monotonic()
            try:
                outcome = await (
                    crud(http, media, seed * 100_000 + n) if kind == "crud" else chat(http, kind, media)
                )
            except httpx.HTTPError as exc:
                outcome = f"transport {type(exc).__name__}"
            except ValueError as exc:
                outcome = f"bad answer {type(exc).__name__}"
            record.add(kind, outcome, time.monotonic() - started)
            n += 1


async def memory_sampler(gateway: Gateway, until: float, samples: list[tuple[float, float]]) -> None:
    started = time.monotonic()
    while time.monotonic() < until:
        samples.append((time.monotonic() - started, gateway.rss_mib()))
        await asyncio.sleep(5)


async def run(gateway: Gateway, clients: int, duration: float, warmup: int) -> dict[str, Any]:
    media = {
        "image": data_uri(png((200, 30, 30)), "image/png"),
        "video": data_uri(mp4(), "video/mp4"),
        "png_b64": data_uri(png((30, 30, 200)), "image/png").split(",", 1)[1],
    }
    warm = Record()
    for _ in range(warmup):  # every code path once or more, so imports and caches are in place
        await asyncio.gather(
            *(client(gateway.url, media, warm, time.monotonic() + 4, 10_000 + i) for i in range(8))
        )
    rss_start = gateway.rss_mib()
    record, memory = Record(), []
    until = time.monotonic() + duration
    started = time.monotonic()
    await asyncio.gather(
        memory_sampler(gateway, until, memory),
        *(client(gateway.url, media, record, until, i) for i in range(clients)),
    )
    elapsed = time.monotonic() - started
    await asyncio.sleep(2)
    rss_end = gateway.rss_mib()
    return {
        "record": record,
        "warm": warm,
        "rss_start": rss_start,
        "rss_end": rss_end,
        "memory": memory,
        "elapsed": elapsed,
    }


def report(result: dict[str, Any], clients: int) -> bool:
    record: Record = result["record"]
    total = sum(record.outcomes.values())
    print(
        f"\n{total} requests from {clients} clients in {result['elapsed']:.0f} s "
        f"({total / result['elapsed']:.1f}/s)\n"
    )
    print("| kind | requests | ok | failed (by outcome) | p50 ms | p95 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    bad = False
    for kind in KINDS:
        outcomes = {o: c for (k, o), c in record.outcomes.items() if k == kind}
        failed = ", ".join(f"{o}: {c}" for o, c in sorted(outcomes.items()) if o != "ok") or "none"
        bad |= any(o != "ok" and not o.startswith("http 4") for o in outcomes)
        lat = [s * 1000 for s in record.latency[kind]]
        print(
            f"| {kind} | {sum(outcomes.values())} | {outcomes.get('ok', 0)} | {failed} | "
            f"{percentile(lat, 0.5):.0f} | {percentile(lat, 0.95):.0f} | {percentile(lat, 0.99):.0f} |"
        )
    growth = (result["rss_end"] - result["rss_start"]) / result["rss_start"] * 100
    trend = ", ".join(f"{t:.0f}s {m:.0f}" for t, m in result["memory"][:: max(1, len(result["memory"]) // 8)])
    print(
        f"\ngateway RSS after warm-up {result['rss_start']:.1f} MiB, at the end {result['rss_end']:.1f} MiB "
        f"({growth:+.1f} %); during the run (MiB): {trend}"
    )
    warm_failed = {o: c for (_, o), c in result["warm"].outcomes.items() if o != "ok"}
    if warm_failed:
        print(f"warm-up failures: {warm_failed}")
    return not bad and growth < 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load after warm-up")
    parser.add_argument("--warmup", type=int, default=2, help="rounds of 8 clients for 4 s before measuring")
    parser.add_argument("--work", type=Path, default=None, help="folder for the gateway's data and logs")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="vlmgw-load-"))
    model_dir = cached_tiny_model(TinyModelSpec())
    gateway = start_gateway(work, model_dir=model_dir)
    try:
        print(
            f"gateway healthy after {gateway.wait_healthy(900):.0f} s (log: {gateway.log_path})", flush=True
        )
        result = asyncio.run(run(gateway, args.clients, args.duration, args.warmup))
    finally:
        gateway.stop()
    sys.exit(0 if report(result, args.clients) else 1)


if __name__ == "__main__":
    main()
