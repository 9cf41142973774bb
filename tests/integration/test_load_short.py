"""The short version of ``benchmarks/load.py`` on the session's gateway: 8 concurrent clients for 10 s,
mixing text, image, video, streamed, structured and platform CRUD requests. Every request succeeds (no
5xx, no broken stream, every structured answer parses, every stored image reads back), and the gateway's
memory does not run away. The full run (64 clients, 2 minutes, figures) is in benchmarks/README.md."""

from __future__ import annotations

import asyncio
import time

import pytest

from benchmarks.harness import data_uri, mp4, png, rss_mib
from benchmarks.load import KINDS, Record, client
from tests.integration.conftest import API_KEY, GatewayProcess

pytestmark = pytest.mark.integration


def test_eight_clients_for_ten_seconds_of_mixed_requests_all_succeed(gateway: GatewayProcess) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    media = {
        "image": data_uri(png((200, 30, 30)), "image/png"),
        "video": data_uri(mp4(), "video/mp4"),
        "png_b64": data_uri(png((30, 30, 200)), "image/png").split(",", 1)[1],
    }

    async def run(seconds: float, first_seed: int) -> Record:
        record = Record()
        until = time.monotonic() + seconds
        await asyncio.gather(
            *(client(gateway.url, media, record, until, first_seed + i, headers) for i in range(8))
        )
        return record

    asyncio.run(run(3, 1000))  # warm-up
    rss_before = rss_mib(gateway.proc.pid)
    record = asyncio.run(run(10, 0))
    rss_after = rss_mib(gateway.proc.pid)
    failed = {key: n for key, n in record.outcomes.items() if key[1] != "ok"}
    assert not failed, failed
    assert {kind for kind, _ in record.outcomes} == set(KINDS)
    assert rss_after < rss_before * 1.25, (rss_before, rss_after)
