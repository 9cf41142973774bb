"""Where decoding runs: worker processes (default) or threads of the gateway process.

Decoders are large C libraries (FFmpeg, libjpeg, libpng, libwebp, libtiff) fed with bytes from anyone who
can call the API. In worker processes, a decoder that crashes on a hostile file, or a file that makes it
allocate without bound (each worker's address space is capped), costs one worker, not the gateway: the
request gets a 400 and the pool is rebuilt for the next one. Threads (``media_decode_isolation=thread``)
avoid the copy of the bytes to the worker and back and suit trusted inputs.

A decode job has a time limit (``media_decode_timeout_s``): past it the request gets a 400
``media_decode_timeout``; in worker processes the stuck worker is killed (the pool is rebuilt, and jobs that
shared the killed pool are run again once), in threads the job is abandoned to finish on its own.

Workers are started with ``spawn`` (a fork of a process that runs an event loop and threads is unsafe)
on first use, and stopped with the app.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import resource
import weakref
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from gateway.media.errors import MediaCorrupt, MediaDecodeTimeout

log = logging.getLogger("vlmgw.media")
T = TypeVar("T")


def _limit_memory(max_bytes: int) -> None:
    """Worker initializer: cap the address space so a decoder's runaway allocation fails inside it."""
    if max_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


class DecodeWorkers:
    """Runs decode jobs, at most ``concurrency`` at a time, in processes or threads."""

    def __init__(
        self, concurrency: int, *, isolation: str = "process", memory_limit_bytes: int = 0,
        timeout_s: float = 0.0,
    ) -> None:  # fmt: skip
        """``timeout_s``: the time limit of one job (0: none)."""
        self.concurrency = max(1, concurrency)
        self.isolation = isolation
        self.memory_limit_bytes = memory_limit_bytes
        self.timeout_s = timeout_s
        self._slots = asyncio.Semaphore(self.concurrency)
        self._pool: ProcessPoolExecutor | None = None
        # Pools killed for a time-out: their other jobs are not at fault.
        self._killed: weakref.WeakSet[ProcessPoolExecutor] = weakref.WeakSet()

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` off the event loop; a crashed worker becomes ``MediaCorrupt``, a job over the time
        limit ``MediaDecodeTimeout``."""
        async with self._slots:
            if self.isolation == "thread":
                return await self._limited(asyncio.to_thread(func, *args))
            for attempt in (1, 2):
                pool = self._executor()
                try:
                    future = asyncio.get_running_loop().run_in_executor(pool, func, *args)
                    return await self._limited(future, pool)
                except BrokenProcessPool as exc:
                    self._discard(pool)
                    if pool in self._killed and attempt == 1:
                        continue  # another job's time-out killed this pool: run this one again
                    log.warning("a media decoder worker died; starting a new one")
                    raise MediaCorrupt("the file crashed the decoder (corrupt or hostile data)") from exc
                except MemoryError as exc:
                    raise MediaCorrupt("decoding the file needed more memory than allowed") from exc
            raise AssertionError("unreachable")

    async def _limited(self, work: Any, pool: ProcessPoolExecutor | None = None) -> T:
        if self.timeout_s <= 0:
            result: T = await work
            return result
        try:
            return await asyncio.wait_for(work, self.timeout_s)  # type: ignore[no-any-return]
        except TimeoutError:
            if pool is not None:
                self._kill(pool)
            log.warning("a media decode job ran past its time limit of %.1f s; stopped", self.timeout_s)
            raise MediaDecodeTimeout(
                f"decoding took longer than the limit of {self.timeout_s:g} s (VLMGW_MEDIA_DECODE_TIMEOUT_S)"
            ) from None

    def _kill(self, pool: ProcessPoolExecutor) -> None:
        """Stop a pool whose worker is stuck: its processes are killed and the next job gets a new pool."""
        self._killed.add(pool)
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
        self._discard(pool)

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
