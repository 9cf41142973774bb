"""Decoding in worker processes: a crashing or memory-hungry decoder costs a worker, not the gateway."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from gateway.media.errors import MediaCorrupt, MediaDecodeTimeout, MediaUnsupported
from gateway.media.images import ImageLimits, check_image
from gateway.media.workers import DecodeWorkers
from tests.support.media import image_bytes


def crash() -> None:
    os.abort()  # what a segfaulting decoder looks like from outside


def allocate(size: int) -> int:
    return len(bytearray(size))


def worker_pid() -> int:
    return os.getpid()


async def test_a_crashing_decoder_is_a_400_and_the_next_job_runs() -> None:
    workers = DecodeWorkers(1)
    try:
        first = await workers.run(worker_pid)
        assert first != os.getpid()
        with pytest.raises(MediaCorrupt, match="crashed the decoder"):
            await workers.run(crash)
        assert await workers.run(worker_pid) not in (first, os.getpid())  # a fresh worker
        checked = await workers.run(check_image, image_bytes("PNG"), ImageLimits())
        assert checked.width == 64
    finally:
        workers.close()


async def test_memory_cap_and_errors_come_back_as_media_errors() -> None:
    workers = DecodeWorkers(1, memory_limit_bytes=1536 * 1024**2)
    try:
        with pytest.raises(MediaCorrupt, match="more memory"):
            await workers.run(allocate, 4 * 1024**3)
        assert await workers.run(allocate, 1024) == 1024
        with pytest.raises(MediaUnsupported, match="not an image"):
            await workers.run(check_image, b"plain text", ImageLimits())
    finally:
        workers.close()


async def test_thread_isolation_runs_in_process() -> None:
    workers = DecodeWorkers(2, isolation="thread")
    assert await workers.run(worker_pid) == os.getpid()


def stuck(seconds: float) -> int:
    """A decoder that hangs (a hostile video that makes it loop)."""
    time.sleep(seconds)
    return os.getpid()


async def test_a_decode_past_its_time_limit_is_a_400_and_the_worker_is_stopped() -> None:
    workers = DecodeWorkers(2)
    try:
        stuck_pid, _ = await asyncio.gather(workers.run(stuck, 0.5), workers.run(stuck, 0.5))  # started
        workers.timeout_s = 4.0  # room for a fresh pool's start on a busy machine
        started = time.monotonic()
        hung, innocent = await asyncio.gather(
            workers.run(stuck, 60.0), workers.run(stuck, 0.3), return_exceptions=True
        )
        assert time.monotonic() - started < 20
        assert isinstance(hung, MediaDecodeTimeout) and hung.code == "media_decode_timeout"
        assert isinstance(innocent, int)  # the job beside it is not at fault and answers
        assert await workers.run(worker_pid) != stuck_pid  # a fresh pool for the next job
    finally:
        workers.close()


async def test_the_time_limit_holds_in_threads_too() -> None:
    workers = DecodeWorkers(1, isolation="thread", timeout_s=0.2)
    with pytest.raises(MediaDecodeTimeout, match="longer than the limit"):
        await workers.run(stuck, 1.0)
