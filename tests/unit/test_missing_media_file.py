"""A stored image whose file is gone from the model store: a clear 410 naming the part, and a log line."""

from __future__ import annotations

import base64
import hashlib
import logging
from pathlib import Path
from typing import Any

from models_store.image_store import image_key
from tests.fakes import FakeVLLM
from tests.support.media import png_bytes


async def test_a_missing_stored_file_is_a_410_not_a_500(
    make_client: Any, fake_engine: FakeVLLM, tmp_path: Path
) -> None:
    data = png_bytes("blue")
    async with make_client(fake_engine, media_decode_isolation="thread") as client:
        resp = await client.post("/vlm/v2/image/", json={"_base64": base64.b64encode(data).decode()})
        assert resp.status_code == 201, resp.text
        image_id = resp.json()["id"]
        stored = next(
            p
            for p in tmp_path.rglob("*")
            if p.as_posix().endswith(image_key(hashlib.sha256(data).hexdigest()))
        )
        stored.unlink()  # lost from the store (deleted by hand, a store that lost it)
        logged: list[logging.LogRecord] = []
        handler = logging.Handler(logging.ERROR)
        handler.emit = logged.append  # type: ignore[method-assign]
        logging.getLogger("vlmgw.images").addHandler(handler)
        content = [
            {"type": "text", "text": "What?"},
            {"type": "image_url", "image_url": {"url": f"image://{image_id}"}},
        ]
        body = {"model": "tiny", "messages": [{"role": "user", "content": content}]}
        resp = await client.post("/v1/chat/completions", json=body)
        assert resp.status_code == 410, resp.text
        error = resp.json()["error"]
        assert (error["code"], error["param"]) == (
            "media_file_missing",
            "messages[0].content[1].image_url.url",
        )
        assert image_id in error["message"]
        resp = await client.get(f"/vlm/v2/image/{image_id}/file/")
        assert resp.status_code == 410, resp.text
        assert resp.json()["error"]["code"] == "media_file_missing"
    assert fake_engine.requests == []
    logging.getLogger("vlmgw.images").removeHandler(handler)
    assert any(image_id in r.getMessage() and "missing" in r.getMessage() for r in logged)
