"""Media hand-off to the engine: base64 ``data:`` URIs against local files (``file://``), in one run.

The gateway fetches and checks every image itself, so it must hand the checked bytes to vLLM somehow. Two
ways work when the engine runs on the same machine: inline them as base64 data URIs in the JSON body, or
write them to a gateway temp folder that vLLM may read (``--allowed-local-media-path``) and send
``file://`` URLs, deleting the files after the answer. This script starts one vLLM server (CPU build, tiny
model) with that flag and, for several image sizes and counts, alternates blocks of identical requests in
both forms. Each timed request includes the gateway-side work of its form (base64-encoding and JSON
encoding, or writing and deleting the files), so the figures compare the whole hand-off.

    uv run python benchmarks/media_handoff.py [--rounds 3] [--requests 12]

Only loopback traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import msgspec
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.supervisor import EngineSpec, VLLMSupervisor, free_port
from models_store.tiny_model import TinyModelSpec, cached_tiny_model

MODEL = "tiny"


def photo_jpeg(width: int, height: int, seed: int) -> bytes:
    """A JPEG that compresses like a photo (smooth gradients plus sensor-like noise)."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    base = np.concatenate([x * 200 + 20 + 0 * y, y * 180 + 30 + 0 * x, (x + y) * 90 + 10], axis=2)
    noisy = base + rng.normal(0, 18, size=(height, width, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


CASES = {  # name -> (width, height, images per request)
    "1 x 640x480": (640, 480, 1),
    "1 x 1920x1080": (1920, 1080, 1),
    "1 x 4000x3000": (4000, 3000, 1),
    "8 x 1280x720 (frames)": (1280, 720, 8),
}


def body_for(urls: list[str]) -> bytes:
    content: list[dict[str, object]] = [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    content.append({"type": "text", "text": "Describe."})
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 1}
    return msgspec.json.encode(body)


async def send(http: aiohttp.ClientSession, url: str, body: bytes) -> None:
    async with http.post(url, data=body, headers={"content-type": "application/json"}) as resp:
        text = await resp.text()
        if resp.status != 200:
            raise SystemExit(f"engine answered {resp.status}: {text[:300]}")


async def via_data_uri(http: aiohttp.ClientSession, url: str, images: list[bytes]) -> float:
    started = time.perf_counter()
    urls = ["data:image/jpeg;base64," + base64.b64encode(img).decode() for img in images]
    await send(http, url, body_for(urls))
    return time.perf_counter() - started


async def via_file(http: aiohttp.ClientSession, url: str, images: list[bytes], folder: Path) -> float:
    started = time.perf_counter()
    paths = [folder / f"{uuid.uuid4().hex}.jpg" for _ in images]
    for path, img in zip(paths, images, strict=True):
        path.write_bytes(img)
    try:
        await send(http, url, body_for([p.as_uri() for p in paths]))
    finally:
        for path in paths:
            path.unlink()
    return time.perf_counter() - started


async def measure(engine_url: str, folder: Path, rounds: int, requests: int) -> None:
    url = engine_url + "/v1/chat/completions"
    print(f"{'case':24} {'MB/req':>7} {'data: p50 ms':>13} {'file: p50 ms':>13} {'file/data':>10}")
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for name, (w, h, count) in CASES.items():
            images = [photo_jpeg(w, h, seed) for seed in range(count)]
            await via_data_uri(http, url, images)  # warm both paths
            await via_file(http, url, images, folder)
            data_t: list[float] = []
            file_t: list[float] = []
            for _ in range(rounds):
                data_t += [await via_data_uri(http, url, images) for _ in range(requests)]
                file_t += [await via_file(http, url, images, folder) for _ in range(requests)]
            d, f = statistics.median(data_t) * 1000, statistics.median(file_t) * 1000
            mb = sum(len(i) for i in images) / 1e6
            print(f"{name:24} {mb:7.2f} {d:13.1f} {f:13.1f} {f / d:10.2f}", flush=True)


async def main_async(args: argparse.Namespace) -> None:
    model_dir = cached_tiny_model(TinyModelSpec(pretrain_steps=300))
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    work = Path(tempfile.mkdtemp(prefix="vlmgw-handoff-"))
    folder = work / "media"
    folder.mkdir()
    spec = EngineSpec(
        model=str(model_dir), served_name=MODEL, port=free_port(), log_path=work / "engine.log",
        extra_args=["--max-model-len", "2048", "--allowed-local-media-path", str(folder)],
    )  # fmt: skip
    engine = VLLMSupervisor(spec, say=lambda m: print(f"[engine] {m}", file=sys.stderr))
    await engine.start()
    try:
        if not await engine.wait_ready(900):
            raise SystemExit("engine did not start")
        print(f"vLLM {spec.url}; {args.rounds} alternating rounds of {args.requests} requests; "
              f"{os.cpu_count()} CPUs; max_tokens 1", flush=True)  # fmt: skip
        await measure(spec.url, folder, args.rounds, args.requests)
    finally:
        await engine.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=12)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
