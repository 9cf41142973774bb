"""Who runs a batch prediction and who delivers a callback: claims with an owner and a lease, taken and
given up only through conditional UPDATEs, so two gateways on one database never run one job twice.

A claim is one ``UPDATE prediction SET owner=?, lease_until=? WHERE id=? AND <still claimable>``: the
database applies it to at most one contender (the others update 0 rows). A holder renews its lease while it
works; a gateway that dies stops renewing, and once the lease has passed another gateway may claim the row
again (a job interrupted by a crash runs again; a finished one never does, because finishing is also
conditional on still holding the claim). Times are the gateways' clocks (keep them in sync, e.g. NTP).

This module is the only place that knows the claim rules, so a generic lease module can replace it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from tortoise.expressions import F, Q

from gateway.db.models import Prediction

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ClaimStore:
    """Claims of one owner (a gateway process), each valid for ``lease_s`` seconds unless renewed."""

    def __init__(self, owner: str, lease_s: float, clock: Clock = utc_now) -> None:
        self.owner = owner
        self.lease_s = lease_s
        self.clock = clock

    def _until(self) -> dt.datetime:
        return self.clock() + dt.timedelta(seconds=self.lease_s)

    def _runnable(self, now: dt.datetime) -> Q:
        waiting = Q(status="pending") | Q(status="running", lease_until__lt=now)
        due = Q(run_after__isnull=True) | Q(run_after__lte=now)
        return Q(waiting, due, batch=True)

    async def runnable(self, limit: int) -> list[uuid.UUID]:
        """Batch predictions that may be claimed now, oldest first."""
        query = Prediction.filter(self._runnable(self.clock())).order_by("created", "id").limit(limit)
        return [uuid.UUID(str(i)) for i in await query.values_list("id", flat=True)]

    async def claim_run(self, prediction_id: uuid.UUID) -> bool:
        """Take a batch prediction to run it; False when another owner has it (or it is done)."""
        now = self.clock()
        updated = await Prediction.filter(self._runnable(now), id=prediction_id).update(
            status="running", owner=self.owner, lease_until=self._until(), started=now,
            attempts=F("attempts") + 1, run_after=None,
        )  # fmt: skip
        return updated == 1

    def hold_new(self, prediction_id: uuid.UUID) -> dict[str, Any]:
        """Fields that make a new row (a synchronous prediction) held by this owner from the start."""
        return {"id": prediction_id, "status": "running", "owner": self.owner, "lease_until": self._until(),
                "started": self.clock(), "attempts": 1}  # fmt: skip

    async def renew(self, prediction_id: uuid.UUID) -> bool:
        """Extend the lease of a prediction this owner runs, or of a callback it delivers."""
        updated = await Prediction.filter(id=prediction_id, owner=self.owner).update(
            lease_until=self._until()
        )
        return updated == 1

    async def release(self, prediction_id: uuid.UUID, run_after: dt.datetime | None = None) -> bool:
        """Give a running batch prediction back (shutdown, engine unavailable): pending again, and the
        claim does not count as an attempt (only claims that end without a word, crashes, count)."""
        updated = await Prediction.filter(id=prediction_id, owner=self.owner, status="running").update(
            status="pending", owner=None, lease_until=None, run_after=run_after, attempts=F("attempts") - 1
        )
        return updated == 1

    async def finish(self, prediction_id: uuid.UUID, **fields: Any) -> bool:
        """Record the outcome, only if this owner still holds the prediction; True exactly once per row."""
        updated = await Prediction.filter(id=prediction_id, owner=self.owner, status="running").update(
            owner=None, lease_until=None, completed=self.clock(), **fields
        )
        return updated == 1

    async def fail_abandoned(self, message: str) -> int:
        """Synchronous predictions whose gateway died while answering (lease passed): failed."""
        now = self.clock()
        abandoned = Prediction.filter(batch=False, status="running", lease_until__lt=now)
        error = {"message": message, "code": "interrupted"}
        done = {"status": "failed", "owner": None, "lease_until": None, "completed": now, "error": error}
        count = await abandoned.filter(callback_url__isnull=False).update(
            **done, callback_status="pending", callback_next_at=now
        )
        return count + await abandoned.filter(callback_url__isnull=True).update(**done)

    def _deliverable(self, now: dt.datetime) -> Q:
        free = Q(owner__isnull=True) | Q(lease_until__lt=now)
        return Q(free, callback_status="pending", callback_next_at__lte=now)

    async def due_callbacks(self, limit: int) -> list[uuid.UUID]:
        query = Prediction.filter(self._deliverable(self.clock())).order_by("callback_next_at").limit(limit)
        return [uuid.UUID(str(i)) for i in await query.values_list("id", flat=True)]

    async def claim_callback(self, prediction_id: uuid.UUID) -> bool:
        """Take a due callback to deliver it; False when another owner has it."""
        now = self.clock()
        updated = await Prediction.filter(self._deliverable(now), id=prediction_id).update(
            owner=self.owner, lease_until=self._until()
        )
        return updated == 1

    async def callback_done(self, prediction_id: uuid.UUID, **fields: Any) -> bool:
        """Record a delivery attempt's outcome and give the claim up."""
        updated = await Prediction.filter(
            id=prediction_id, owner=self.owner, callback_status="pending"
        ).update(owner=None, lease_until=None, **fields)
        return updated == 1
