"""A full disk in a real gateway process: ``vlmgw serve`` run with a file-size limit (RLIMIT_FSIZE), so
writing a large image fails the way a full disk fails (the kernel refuses the write). The upload is a 507
in OpenAI's error shape, nothing of it is kept (no record, no file, no temporary file), and the gateway
goes on serving: a small image is stored afterwards. No engine is needed (its URL answers nothing)."""

from __future__ import annotations

import base64
import errno
import io
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from adapters.supervisor import free_port

KEY = "disk-full-key"
HEADERS = {"Authorization": f"Token {KEY}"}
LIMIT = 4 * 1024 * 1024  # bytes one file may reach; the database stays far below it


def noise_png(side: int) -> bytes:
    """A PNG that does not compress (random pixels): about 3 bytes per pixel."""
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data = tmp_path_factory.mktemp("disk-full")
    port = free_port()

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))

    cmd = [sys.executable, "-m", "gateway", "serve", "--engine-url", f"http://127.0.0.1:{free_port()}",
           "--port", str(port), "--api-key", KEY, "--data-dir", str(data)]  # fmt: skip
    log = (data / "gateway.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=limit_file_size)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (data / "gateway.log").read_text()
            try:
                httpx.get(url + "/health", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "gateway did not start"
                time.sleep(0.3)
        yield url, data
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def store_files(data: Path) -> list[Path]:
    return [p for p in (data / "store").rglob("*") if p.is_file()] if (data / "store").exists() else []


def test_an_image_larger_than_the_disk_allows_is_a_507_and_leaves_nothing(gateway: tuple[str, Path]) -> None:
    url, data = gateway
    big = noise_png(1400)
    assert len(big) > LIMIT
    response = httpx.post(url + "/vlm/v2/image/", json={"_base64": base64.b64encode(big).decode()},
                          headers=HEADERS, timeout=60)  # fmt: skip
    assert response.status_code == 507, response.text
    error = response.json()["error"]
    assert error["code"] == "insufficient_storage" and "nothing was stored" in error["message"]
    assert store_files(data) == []  # no file, no temporary file
    listed = httpx.get(url + "/vlm/v2/image/", headers=HEADERS, timeout=30).json()
    assert listed["count"] == 0

    small = httpx.post(url + "/vlm/v2/image/", json={"_base64": base64.b64encode(noise_png(16)).decode()},
                       headers=HEADERS, timeout=60)  # fmt: skip
    assert small.status_code == 201, small.text
    assert len(store_files(data)) == 1


async def test_a_batch_upload_that_fills_the_disk_keeps_none_of_its_files(
    client: Any, keys: Any, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second of two images hits a full disk: the first one's file is removed again (no orphan)."""
    from models_store.image_store import ImageStore
    from tests.platform.conftest import auth, b64, png

    real_put = ImageStore.put
    calls: list[int] = []

    def put_then_full(self: ImageStore, data: bytes) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_put(self, data)

    monkeypatch.setattr(ImageStore, "put", put_then_full)
    before = (
        {p for p in (store_dir / "store").rglob("*") if p.is_file()}
        if (store_dir / "store").exists()
        else set()
    )
    body = {"records": [{"_base64": b64(png((1, 2, 3)))}, {"_base64": b64(png((4, 5, 6)))}]}
    response = await client.post("/vlm/v2/image/", json=body, headers=auth(keys.a))
    assert response.status_code == 507, response.text
    assert response.json()["error"]["code"] == "insufficient_storage"
    after = {p for p in (store_dir / "store").rglob("*") if p.is_file()}
    assert after == before
