"""Decoding in worker processes: a crashing or memory-hungry decoder costs a worker, not the gateway."""

from __future__ import annotations

import os

import pytest

from gateway.media.errors import MediaCorrupt, MediaUnsupported
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
