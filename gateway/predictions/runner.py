"""Batch predictions in the background: claim, run with bounded concurrency, renew the claim, give it back.

Each gateway runs at most ``concurrency`` batch predictions at once. A pass claims the oldest runnable ones
(pending, or running under a lease that has passed: their gateway died) until its slots are full; setting
``wake`` (a new batch prediction) starts a pass at once, else one runs every poll interval. While a
prediction runs, its lease is renewed every third of the lease; if a renewal finds the claim gone (this
gateway stalled past its lease and another took over) the run is cancelled. On shutdown running
predictions are cancelled and given back as pending, so the next gateway to look picks them up at once.
The same passes fail synchronous predictions whose gateway died while answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import KW_ONLY, dataclass

from gateway.predictions.claims import ClaimStore

log = logging.getLogger("vlmgw.predictions")

Execute = Callable[[uuid.UUID], Awaitable[None]]
ABANDONED = "the gateway stopped while answering this prediction"


@contextlib.asynccontextmanager
async def held(claims: ClaimStore, prediction_id: uuid.UUID, *, cancel_on_loss: bool) -> AsyncIterator[None]:
    """Renew the claim on ``prediction_id`` while the body runs; on loss, cancel the body if asked."""
    body = asyncio.current_task()

    async def renew_forever() -> None:
        while True:
            await asyncio.sleep(claims.lease_s / 3)
            if not await claims.renew(prediction_id):
                log.warning("prediction %s: claim lost (lease passed); another gateway has it", prediction_id)
                if cancel_on_loss and body is not None:
                    body.cancel()
                return

    renewer = asyncio.create_task(renew_forever())
    try:
        yield
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer


async def wait_for_wake(event: asyncio.Event, timeout_s: float) -> None:
    """Until ``event`` is set or ``timeout_s`` has passed; then clear it for the next wait."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout_s)
    event.clear()


async def poll_forever(
    one_pass: Callable[[], Awaitable[None]], wake: asyncio.Event, every_s: float, what: str
) -> None:
    """Run ``one_pass`` now, then each time ``wake`` is set or ``every_s`` has passed; a pass that fails is
    logged and the loop goes on (it must survive a database hiccup)."""
    while True:
        try:
            await one_pass()
        except Exception:
            log.exception("%s: a pass failed", what)
        await wait_for_wake(wake, every_s)


@dataclass(eq=False)
class BatchRunner:
    claims: ClaimStore
    execute: Execute
    _: KW_ONLY
    concurrency: int = 2
    poll_interval_s: float = 2.0
    wake: asyncio.Event | None = None

    def __post_init__(self) -> None:
        self.concurrency = max(self.concurrency, 1)
        self._wake = self.wake or asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._running: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._closing = False

    @property
    def running(self) -> set[uuid.UUID]:
        return set(self._running)

    async def start(self) -> None:
        loop = poll_forever(self._pass, self._wake, self.poll_interval_s, "prediction batches")
        self._loop = asyncio.create_task(loop, name="prediction-batches")

    async def close(self) -> None:
        """Stop claiming, cancel what runs and give it back as pending."""
        self._closing = True
        if self._loop is not None:
            self._loop.cancel()
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*[t for t in (self._loop, *tasks) if t is not None], return_exceptions=True)

    async def _pass(self) -> None:
        await self.claims.fail_abandoned(ABANDONED)
        await self.fill()

    async def fill(self) -> None:
        """Claim runnable predictions until every slot is busy."""
        free = self.concurrency - len(self._running)
        if free <= 0 or self._closing:
            return
        for prediction_id in await self.claims.runnable(free * 2):
            if len(self._running) >= self.concurrency:
                break
            if prediction_id not in self._running and await self.claims.claim_run(prediction_id):
                task = asyncio.create_task(self._one(prediction_id), name=f"prediction-{prediction_id}")
                self._running[prediction_id] = task

    async def _one(self, prediction_id: uuid.UUID) -> None:
        try:
            async with held(self.claims, prediction_id, cancel_on_loss=True):
                await self.execute(prediction_id)
        except asyncio.CancelledError:
            if self._closing:
                await asyncio.shield(self.claims.release(prediction_id))
        except Exception:
            log.exception("prediction %s: running it failed unexpectedly", prediction_id)
        finally:
            self._running.pop(prediction_id, None)
            self._wake.set()
