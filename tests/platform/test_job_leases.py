"""Job leases on both databases: one owner per job, groups held by the database, take-over on expiry.

Several ``JobLeases`` with different owners play several gateways on one database; on PostgreSQL their
claims run concurrently through the connection pool (``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from gateway.db.connection import open_database
from gateway.jobs.leases import GroupBusy, JobLeases


@pytest.fixture
async def database(db_url: str, keys: object) -> AsyncIterator[None]:
    async with open_database(db_url):
        yield


def kind() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"  # each test its own kind: the database is shared by the session


async def test_one_active_job_per_group_whoever_asks(database: None) -> None:
    k = kind()
    a, b = JobLeases(k, "gateway-a"), JobLeases(k, "gateway-b")
    await a.create("job-1", group="task:1")
    with pytest.raises(GroupBusy):
        await b.create("job-2", group="task:1")
    await b.create("job-3", group="task:2")
    assert await a.finish("job-1")
    await b.create("job-2", group="task:1")  # the group is free once the first job finished
    with pytest.raises(GroupBusy):
        await a.reactivate("job-1", group="task:1")
    assert await b.finish("job-2")
    await a.reactivate("job-1", group="task:1")
    assert (await a.get("job-1") or {})["owner"] == "gateway-a"


async def test_live_leases_are_not_taken_expired_ones_are(database: None) -> None:
    k = kind()
    a, b = JobLeases(k, "gateway-a", ttl_s=0.5), JobLeases(k, "gateway-b", ttl_s=30)
    await a.create("job-1")
    assert await b.claim_next(5) == []
    renewed = await a.renew({"job-1"})
    assert renewed.held == {"job-1"} and not renewed.lost
    await asyncio.sleep(0.8)  # gateway-a stopped renewing: its lease expires
    (claim,) = await b.claim_next(5)
    assert (claim.job_id, claim.previous_owner, claim.attempts) == ("job-1", "gateway-a", 2)
    assert await b.claim_next(5) == []  # b's lease is live now
    lost = await a.renew({"job-1"})
    assert lost.lost == {"job-1"} and not lost.held
    assert not await a.finish("job-1")  # a stale owner cannot end the job
    assert await b.finish("job-1")


async def test_released_and_queued_jobs_are_claimed_once_by_concurrent_workers(database: None) -> None:
    k = kind()
    creator = JobLeases(k, "api")
    for n in range(6):
        await creator.create(f"job-{n}", claim=n % 2 == 0)
    for n in range(0, 6, 2):
        assert await creator.release(f"job-{n}")
    workers = [JobLeases(k, f"worker-{w}") for w in range(4)]
    rounds = await asyncio.gather(*(w.claim_next(2) for w in workers for _ in range(2)))
    claimed = [c.job_id for claims in rounds for c in claims]
    assert sorted(claimed) == [f"job-{n}" for n in range(6)]  # every job once, none twice
    owners = {c.job_id: (await creator.get(c.job_id) or {})["owner"] for claims in rounds for c in claims}
    assert all(owner.startswith("worker-") for owner in owners.values())


async def test_cancel_request_reaches_the_owner_at_its_heartbeat(database: None) -> None:
    k = kind()
    owner, other = JobLeases(k, "gateway-a"), JobLeases(k, "gateway-b")
    await owner.create("job-1")
    await other.request_cancel("job-1")
    assert (await owner.renew({"job-1"})).cancel == {"job-1"}
    assert await other.claim("job-1") is None  # live lease: the owner cancels it, nobody else


async def test_handle_and_cursor_survive_a_take_over(database: None) -> None:
    k = kind()
    a, b = JobLeases(k, "gateway-a", ttl_s=0.3), JobLeases(k, "gateway-b")
    await a.create("job-1")
    await a.set_handle("job-1", "ray-job-1")
    await a.set_cursor("job-1", 17)
    await asyncio.sleep(0.5)
    claim = await b.claim("job-1")
    assert claim is not None and (claim.handle, claim.cursor) == ("ray-job-1", 17)
