"""Where decoding runs: worker processes (default) or threads of the gateway process.

Decoders are large C libraries (FFmpeg, libjpeg, libpng, libwebp, libtiff) fed with bytes from anyone who
can call the API. In worker processes, a decoder that crashes on a hostile file, or a file that makes it
allocate without bound (each worker's address space is capped), costs one worker, not the gateway: the
request gets a 400 and the pool is rebuilt for the next one. Threads (``media_decode_isolation=thread``)
avoid the copy of the bytes to the worker and back and suit trusted inputs.

Workers are started with ``spawn`` (a fork of a process that runs an event loop and threads is unsafe)
on first use, and stopped with the app.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import resource
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from gateway.media.errors import MediaCorrupt

log = logging.getLogger("vlmgw.media")
T = TypeVar("T")


def _limit_memory(max_bytes: int) -> None:
    """Worker initializer: cap the address space so a decoder's runaway allocation fails inside it."""
    if max_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


class DecodeWorkers:
    """Runs decode jobs, at most ``concurrency`` at a time, in processes or threads."""

    def __init__(self, concurrency: int, *, isolation: str = "process", memory_limit_bytes: int = 0) -> None:
        self.concurrency = max(1, concurrency)
        self.isolation = isolation
        self.memory_limit_bytes = memory_limit_bytes
        self._slots = asyncio.Semaphore(self.concurrency)
        self._pool: ProcessPoolExecutor | None = None

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` off the event loop; a crashed worker becomes ``MediaCorrupt``."""
        async with self._slots:
            if self.isolation == "thread":
                return await asyncio.to_thread(func, *args)
            pool = self._executor()
            try:
                return await asyncio.get_running_loop().run_in_executor(pool, func, *args)
            except BrokenProcessPool as exc:
                self._discard(pool)
                log.warning("a media decoder worker died; starting a new one")
                raise MediaCorrupt("the file crashed the decoder (corrupt or hostile data)") from exc
            except MemoryError as exc:
                raise MediaCorrupt("decoding the file needed more memory than allowed") from exc

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.concurrency,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_limit_memory,
                initargs=(self.memory_limit_bytes,),
            )
        return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        if self._pool is pool:
            self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
