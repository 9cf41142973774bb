"""Concurrent requests on a real server each run in the app's database context without disturbing one another.

(Litestar's test client runs requests one at a time, so this needs uvicorn.) Before the fix, 39 of 40
concurrent requests ended with "Token ... was created in a different Context" after their response began,
and the server dropped those keep-alive connections.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx

from adapters.supervisor import free_port

SERVER = """
import sys, uvicorn
from pathlib import Path
from gateway.app import create_app
from gateway.settings import Settings
app = create_app(Settings(data_dir=Path(sys.argv[1]), api_keys=["k"]), engines=[])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


async def test_concurrent_requests_keep_their_own_database_context(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(tmp_path), str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer k"}) as client:
            burst = await asyncio.gather(*(client.get("/vlm/v2/task/") for _ in range(40)))
            again = await asyncio.gather(*(client.get("/vlm/v2/dataset/") for _ in range(40)))
        assert [r.status_code for r in burst + again] == [200] * 80
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    assert "Traceback" not in (tmp_path / "server.log").read_text()
