"""Batch predictions under contention, on SQLite and PostgreSQL: every job runs once, however many
gateways (claim stores and runners with owners of their own) share the database."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from gateway.db.connection import open_database
from gateway.db.models import Prediction, Workspace
from gateway.predictions.claims import ClaimStore, utc_now
from gateway.predictions.runner import BatchRunner
from tests.platform.conftest import scratch_database


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def claims_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A database of this module's own: the session's platform gateway runs a batch runner of its own on
    the shared one, which would claim these rows too."""
    sqlite_file = tmp_path_factory.mktemp("claims") / "claims.sqlite3"
    async with scratch_database(
        request.param, sqlite_file, "vlmgw_claims", "the SQLite claims tests ran"
    ) as url:
        yield url


@pytest.fixture
async def ws(claims_db: str) -> AsyncIterator[uuid.UUID]:
    async with open_database(claims_db):
        workspace = await Workspace.create(id=uuid.uuid4(), name=f"claims-{uuid.uuid4().hex[:6]}")
        yield workspace.id


async def _pending(ws: uuid.UUID, count: int, **fields: object) -> list[uuid.UUID]:
    ids = []
    for _ in range(count):
        row = await Prediction.create(
            id=uuid.uuid4(), workspace_id=ws, kind="image", domain="image.caption", model="vlm-1", batch=True,
            status="pending", **fields,
        )  # fmt: skip
        ids.append(row.id)
    return ids


async def _until(predicate: object, timeout_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_two_gateways_run_every_job_exactly_once(ws: uuid.UUID) -> None:
    ids = await _pending(ws, 16)
    ran: Counter[uuid.UUID] = Counter()
    stores = [ClaimStore(f"gw-{n}", lease_s=30) for n in range(2)]

    def executor(store: ClaimStore):  # type: ignore[no-untyped-def]
        async def execute(pid: uuid.UUID) -> None:
            ran[pid] += 1
            await asyncio.sleep(0.01)
            assert await store.finish(pid, status="completed", response={"by": store.owner})

        return execute

    await _run_until_done(
        ids, *(BatchRunner(s, executor(s), concurrency=3, poll_interval_s=0.01) for s in stores)
    )
    assert ran == Counter({pid: 1 for pid in ids})
    rows = await Prediction.filter(id__in=ids)
    assert {r.status for r in rows} == {"completed"} and {r.owner for r in rows} == {None}
    assert {r.attempts for r in rows} == {1}


async def _all_done(ids: list[uuid.UUID]) -> bool:
    return await Prediction.filter(id__in=ids, status="completed").count() == len(ids)


async def _run_until_done(ids: list[uuid.UUID], *runners: BatchRunner) -> None:
    """Start the runners, wait until every job of ``ids`` completed, close them."""
    for runner in runners:
        await runner.start()
    try:
        await _until(lambda: _all_done(ids))
    finally:
        for runner in runners:
            await runner.close()


async def test_a_gateway_runs_at_most_its_concurrency_at_once(ws: uuid.UUID) -> None:
    ids = await _pending(ws, 6)
    store = ClaimStore("gw-bounded", lease_s=30)
    now_running: set[uuid.UUID] = set()
    peak = 0

    async def execute(pid: uuid.UUID) -> None:
        nonlocal peak
        now_running.add(pid)
        peak = max(peak, len(now_running))
        await asyncio.sleep(0.05)
        now_running.discard(pid)
        await store.finish(pid, status="completed")

    await _run_until_done(ids, BatchRunner(store, execute, concurrency=2, poll_interval_s=0.01))
    assert peak == 2


async def test_a_live_claim_is_exclusive_and_an_expired_one_moves_on(ws: uuid.UUID) -> None:
    (pid,) = await _pending(ws, 1)
    first = ClaimStore("gw-a", lease_s=60)
    later = ClaimStore("gw-b", lease_s=60, clock=lambda: utc_now() + dt.timedelta(seconds=61))
    second = ClaimStore("gw-b", lease_s=60)
    assert await first.claim_run(pid)
    assert not await second.claim_run(pid)  # the lease holds
    assert await later.claim_run(pid)  # gw-a stopped renewing: its lease passed
    assert not await first.finish(pid, status="completed")  # gw-a lost it: its result is not recorded
    assert not await first.renew(pid)
    assert await later.finish(pid, status="completed")
    assert not await later.finish(pid, status="completed")  # exactly once
    assert not await later.claim_run(pid)  # and done is done
    row = await Prediction.get(id=pid)
    assert (row.status, row.attempts) == ("completed", 2)


async def test_closing_gives_running_jobs_back_and_another_gateway_finishes_them(ws: uuid.UUID) -> None:
    ids = await _pending(ws, 2)
    started = asyncio.Event()

    async def hang(_pid: uuid.UUID) -> None:
        started.set()
        await asyncio.sleep(3600)

    first = BatchRunner(ClaimStore("gw-old", lease_s=60), hang, concurrency=2, poll_interval_s=0.01)
    await first.start()
    await asyncio.wait_for(started.wait(), 10)
    await _until(lambda: _count(ids, "running", 2))
    await first.close()
    rows = await Prediction.filter(id__in=ids)
    assert {(r.status, r.owner) for r in rows} == {("pending", None)}
    store = ClaimStore("gw-new", lease_s=60)

    async def finish(pid: uuid.UUID) -> None:
        await store.finish(pid, status="completed")

    await _run_until_done(ids, BatchRunner(store, finish, concurrency=2, poll_interval_s=0.01))


async def _count(ids: list[uuid.UUID], status: str, wanted: int) -> bool:
    return await Prediction.filter(id__in=ids, status=status).count() == wanted


async def test_run_after_delays_a_released_job(ws: uuid.UUID) -> None:
    (pid,) = await _pending(ws, 1)
    store = ClaimStore("gw-wait", lease_s=60)
    assert await store.claim_run(pid)
    assert await store.release(pid, run_after=utc_now() + dt.timedelta(seconds=30))
    assert pid not in await store.runnable(100) and not await store.claim_run(pid)
    later = ClaimStore("gw-wait", lease_s=60, clock=lambda: utc_now() + dt.timedelta(seconds=31))
    assert pid in await later.runnable(100) and await later.claim_run(pid)
    assert (await Prediction.get(id=pid)).attempts == 1  # a claim given back is not an attempt


async def test_a_synchronous_prediction_whose_gateway_died_fails_and_calls_back(ws: uuid.UUID) -> None:
    store = ClaimStore("gw-sync", lease_s=60)
    ids = []
    for url in ("http://127.0.0.1:9/hook", None):
        pid = uuid.uuid4()
        await Prediction.create(workspace_id=ws, kind="image", domain="d", model="m", callback_url=url,
                                **store.hold_new(pid))  # fmt: skip
        ids.append(pid)
    assert await store.fail_abandoned("gone") == 0  # the lease still holds
    later = ClaimStore("gw-other", lease_s=60, clock=lambda: utc_now() + dt.timedelta(seconds=61))
    assert await later.fail_abandoned("gone") == 2
    with_callback, without = [await Prediction.get(id=i) for i in ids]
    assert with_callback.status == without.status == "failed"
    assert with_callback.error == {"message": "gone", "code": "interrupted"}
    assert (with_callback.callback_status, without.callback_status) == ("pending", None)


async def test_a_callback_is_claimed_by_one_gateway_at_a_time(ws: uuid.UUID) -> None:
    (pid,) = await _pending(ws, 1, callback_url="http://127.0.0.1:9/hook")
    await Prediction.filter(id=pid).update(status="completed", callback_status="pending",
                                           callback_next_at=utc_now())  # fmt: skip
    stores = [ClaimStore(f"gw-{n}", lease_s=60) for n in range(4)]
    won = await asyncio.gather(*(s.claim_callback(pid) for s in stores))
    assert sum(won) == 1
    winner = stores[won.index(True)]
    assert await winner.callback_done(pid, callback_status="delivered", callback_attempts=1)
    assert await winner.due_callbacks(10) == [] and not await stores[0].claim_callback(pid)
