"""What the load and fault benchmarks share: a real gateway that spawns vLLM on the tiny model, its memory,
and the request bodies of each kind a user sends (text, image, video, streamed, structured).

Everything listens on 127.0.0.1; the media are generated in code.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.supervisor import free_port
from tests.support.health import stop_group

KEY = "bench-key"
MODEL = "tiny"
HEADERS = {"Authorization": f"Bearer {KEY}"}


@dataclass
class Gateway:
    """A ``vlmgw serve`` child process (it spawns and supervises vLLM unless given ``--engine-url``)."""

    url: str
    proc: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path
    started: float = field(default_factory=time.monotonic)

    def health(self) -> dict[str, Any]:
        response = httpx.get(self.url + "/health", timeout=5)
        body: dict[str, Any] = response.json()
        body["status_code"] = response.status_code
        return body

    def healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_healthy(self, timeout_s: float) -> float:
        """Seconds until ``/health`` said 200; raises with the log's tail when it does not."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.healthy():
                return time.monotonic() - started
            time.sleep(0.25)
        raise RuntimeError(f"gateway not healthy after {timeout_s} s:\n{self.log_tail()}")

    def engine_pid(self) -> int:
        pid = self.health()["engines"][0]["pid"]
        assert isinstance(pid, int)
        return pid

    def rss_mib(self) -> float:
        return rss_mib(self.proc.pid)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        stop_group(self.proc)


def start_gateway(
    data_dir: Path,
    *,
    model_dir: Path | None = None,
    engine_url: str | None = None,
    adapters: dict[str, Path] | None = None,
    serve_args: list[str] | None = None,
    engine_args: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Gateway:
    """Start ``python -m gateway serve`` on a free loopback port (not waiting for health)."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"gateway-{port}.log"
    cmd = [sys.executable, "-m", "gateway", "serve", "--port", str(port), "--api-key", KEY]
    if engine_url is not None:
        cmd += ["--engine-url", engine_url]
    if model_dir is not None:  # with --engine-url: the base model's files, for training
        cmd += ["--model", str(model_dir), "--served-model-name", MODEL]
    for name, path in (adapters or {}).items():
        cmd += ["--adapter", f"{name}={path}"]
    cmd += serve_args or []
    if engine_url is None:
        cmd += ["--", "--max-model-len", "2048", "--max-num-seqs", "32", *(engine_args or [])]
    environment = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLMGW_DATA_DIR": str(data_dir),
        **(env or {}),
    }
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=True
        )
    return Gateway(f"http://127.0.0.1:{port}", proc, data_dir, log_path)


def rss_mib(pid: int) -> float:
    """Resident memory of one process (not its children) in MiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def png(colour: tuple[int, int, int], size: int = 56) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="PNG")
    return buf.getvalue()


def mp4(frames: int = 16, size: tuple[int, int] = (64, 48)) -> bytes:
    """A short generated H.264 video (grey frames), as tests/support/media.py makes them."""
    from tests.support.media import video_bytes

    return video_bytes(seconds=frames / 8, fps=8, size=size)


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


SCHEMA = {
    "type": "object",
    "properties": {
        "colour": {"enum": ["red", "green", "blue"]},
        "n": {"type": "integer", "minimum": 0, "maximum": 9},
    },
    "required": ["colour", "n"],
    "additionalProperties": False,
}


def chat_body(kind: str, media: dict[str, str], model: str = MODEL) -> dict[str, Any]:
    """A chat request of one kind: text, image, video, stream or structured."""
    text = {"type": "text", "text": "Describe it."}
    content: Any = "Say something short."
    if kind == "image":
        content = [{"type": "image_url", "image_url": {"url": media["image"]}}, text]
    elif kind == "video":
        content = [{"type": "video_url", "video_url": {"url": media["video"]}}, text]
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 12,
        "temperature": 0,
    }
    if kind == "stream":
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    if kind == "structured":
        body |= {
            "max_tokens": 40,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}},
        }
    return body
