"""Leases on background jobs: exactly one worker (a gateway process) owns a job at a time, in the database.

Any kind of background job uses the same table (``job_lease``) and the same rules:

- ``create`` inserts a job's lease, optionally claimed by the caller at once and optionally in a *group*
  (``group_key``, e.g. ``task:<id>``) that allows one active job per kind: the unique
  (kind, group_key) constraint refuses a second one (``GroupBusy``), whichever gateway asks.
- The owner renews its leases by heartbeat (``renew``) well before they expire; ``renew`` also says which
  leases it no longer holds (taken over, or finished elsewhere) and which were asked to cancel.
- ``claim_next`` takes unowned leases (queued, or released on a clean shutdown) and expired ones (the owner
  died): ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two gateways never pick the same row and
  never wait on each other; on SQLite an atomic conditional UPDATE per row (SQLite serialises writers).
- ``release`` hands a job back (owner cleared, still active); ``finish`` ends it (inactive, group freed).

Expiry uses the database's clock, so the gateways' clocks do not need to agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tortoise.connection import get_connections
from tortoise.exceptions import IntegrityError

_NOW = {
    "postgres": "extract(epoch from clock_timestamp())::float8",
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}


class GroupBusy(Exception):
    """Another active job of this kind holds the group (e.g. the task already trains)."""


@dataclass(frozen=True)
class Claim:
    """A lease this worker now owns: which job, the how-manieth claim, and what the last owner left."""

    job_id: str
    attempts: int
    previous_owner: str | None
    handle: str | None
    cursor: int
    cancel: bool


@dataclass(frozen=True)
class Renewal:
    held: set[str]
    lost: set[str]
    cancel: set[str]


def _connection() -> Any:
    handler = get_connections()
    return handler.get(next(iter(handler.db_config)))


class _Sql:
    """Statement text for the current connection's dialect (``?`` or ``$n`` parameters)."""

    def __init__(self, connection: Any) -> None:
        self.dialect = "postgres" if connection.capabilities.dialect == "postgres" else "sqlite"
        self.now = _NOW[self.dialect]

    def __call__(self, text: str) -> str:
        if self.dialect == "sqlite":
            return text
        parts = text.split("?")
        return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))


class JobLeases:
    """The leases of one job ``kind`` as seen by one worker (``owner``), each valid ``ttl_s`` seconds."""

    def __init__(self, kind: str, owner: str, ttl_s: float = 30.0) -> None:
        self.kind = kind
        self.owner = owner
        self.ttl_s = ttl_s

    async def _query(self, text: str, *values: Any) -> list[dict[str, Any]]:
        connection = _connection()
        sql = _Sql(connection)
        return list(await connection.execute_query_dict(sql(text.replace("{now}", sql.now)), list(values)))

    async def create(self, job_id: str, *, group: str | None = None, claim: bool = True) -> None:
        """A new job's lease (owned by this worker when ``claim``); ``GroupBusy`` if its group is taken."""
        owner = self.owner if claim else None
        try:
            await self._query(
                "INSERT INTO job_lease (kind, job_id, group_key, active, owner, expires, attempts, cancel,"
                " cursor, created) VALUES (?, ?, ?, TRUE, ?, CASE WHEN ? THEN {now} + ? END, ?, FALSE, 0,"
                " CURRENT_TIMESTAMP)",
                self.kind, job_id, group, owner, claim, self.ttl_s, 1 if claim else 0,
            )  # fmt: skip
        except IntegrityError as exc:
            raise GroupBusy(group or job_id) from exc

    async def reactivate(self, job_id: str, *, group: str | None = None) -> None:
        """Make a finished job's lease active and ours again (resume); ``GroupBusy`` if the group is taken."""
        try:
            rows = await self._query(
                "UPDATE job_lease SET active = TRUE, group_key = ?, owner = ?, expires = {now} + ?,"
                " attempts = attempts + 1, cancel = FALSE, handle = NULL, cursor = 0"
                " WHERE kind = ? AND job_id = ? AND NOT active RETURNING job_id",
                group, self.owner, self.ttl_s, self.kind, job_id,
            )  # fmt: skip
        except IntegrityError as exc:
            raise GroupBusy(group or job_id) from exc
        if not rows:
            raise GroupBusy(job_id)

    async def claim_next(self, limit: int = 1) -> list[Claim]:
        """Take up to ``limit`` unowned or expired active leases of this kind, oldest first."""
        if limit < 1:
            return []
        connection = _connection()
        if _Sql(connection).dialect == "postgres":
            rows = await self._query(
                "WITH picked AS (SELECT id, owner AS previous FROM job_lease WHERE kind = ? AND active"
                " AND (owner IS NULL OR expires < {now}) ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED)"
                " UPDATE job_lease AS l SET owner = ?, expires = {now} + ?, attempts = l.attempts + 1"
                " FROM picked WHERE l.id = picked.id"
                " RETURNING l.job_id, l.attempts, picked.previous, l.handle, l.cursor, l.cancel",
                self.kind, limit, self.owner, self.ttl_s,
            )  # fmt: skip
            return [_claim(row) for row in rows]
        candidates = await self._query(
            "SELECT id, owner AS previous FROM job_lease WHERE kind = ? AND active"
            " AND (owner IS NULL OR expires < {now}) ORDER BY id LIMIT ?",
            self.kind, limit + 50,
        )  # fmt: skip
        claims: list[Claim] = []
        for candidate in candidates:  # another worker may win a row between the SELECT and our UPDATE
            if len(claims) == limit:
                break
            claims += await self._take(candidate["id"], candidate["previous"])
        return claims

    async def claim(self, job_id: str) -> Claim | None:
        """Take one job's lease if it is active and unowned or expired (e.g. to cancel a dead owner's job)."""
        rows = await self._query(
            "SELECT id, owner AS previous FROM job_lease WHERE kind = ? AND job_id = ? AND active",
            self.kind, job_id,
        )  # fmt: skip
        claims = await self._take(rows[0]["id"], rows[0]["previous"]) if rows else []
        return claims[0] if claims else None

    async def _take(self, row_id: int, previous: str | None) -> list[Claim]:
        rows = await self._query(
            "UPDATE job_lease SET owner = ?, expires = {now} + ?, attempts = attempts + 1"
            " WHERE id = ? AND active AND (owner IS NULL OR expires < {now})"
            " RETURNING job_id, attempts, handle, cursor, cancel",
            self.owner, self.ttl_s, row_id,
        )  # fmt: skip
        return [_claim({**row, "previous": previous}) for row in rows]

    async def renew(self, held: set[str]) -> Renewal:
        """Extend every active lease this worker owns: which of ``held`` it keeps, lost, or must cancel."""
        rows = await self._query(
            "UPDATE job_lease SET expires = {now} + ? WHERE kind = ? AND owner = ? AND active"
            " RETURNING job_id, cancel",
            self.ttl_s, self.kind, self.owner,
        )  # fmt: skip
        kept = {str(r["job_id"]) for r in rows}
        return Renewal(kept, held - kept, {str(r["job_id"]) for r in rows if r["cancel"]})

    async def release(self, job_id: str) -> bool:
        """Give the job back (still active): another worker, or this one after a restart, continues it."""
        rows = await self._query(
            "UPDATE job_lease SET owner = NULL, expires = NULL WHERE kind = ? AND job_id = ? AND owner = ?"
            " RETURNING job_id",
            self.kind, job_id, self.owner,
        )  # fmt: skip
        return bool(rows)

    async def finish(self, job_id: str, *, only_if_owner: bool = True) -> bool:
        """End the job's lease (inactive, its group free); False when another worker owns it now."""
        owned = " AND owner = ?" if only_if_owner else ""
        rows = await self._query(
            "UPDATE job_lease SET active = FALSE, group_key = NULL, owner = NULL, expires = NULL,"
            f" cancel = FALSE WHERE kind = ? AND job_id = ?{owned} RETURNING job_id",
            self.kind, job_id, *([self.owner] if only_if_owner else []),
        )  # fmt: skip
        return bool(rows)

    async def request_cancel(self, job_id: str) -> None:
        """Ask the owner (whichever worker it is) to cancel; it sees the flag at its next heartbeat."""
        await self._query(
            "UPDATE job_lease SET cancel = TRUE WHERE kind = ? AND job_id = ? AND active", self.kind, job_id
        )

    async def set_handle(self, job_id: str, handle: str | None, cursor: int = 0) -> None:
        """Remember the backend's handle for the job (a Ray submission id) and how far it was followed."""
        await self._query(
            "UPDATE job_lease SET handle = ?, cursor = ? WHERE kind = ? AND job_id = ? AND owner = ?",
            handle, cursor, self.kind, job_id, self.owner,
        )  # fmt: skip

    async def set_cursor(self, job_id: str, cursor: int) -> None:
        await self._query(
            "UPDATE job_lease SET cursor = ? WHERE kind = ? AND job_id = ? AND owner = ?",
            cursor, self.kind, job_id, self.owner,
        )  # fmt: skip

    async def get(self, job_id: str) -> dict[str, Any] | None:
        rows = await self._query(
            "SELECT job_id, group_key, active, owner, attempts, cancel, handle, cursor,"
            " expires - {now} AS expires_in FROM job_lease WHERE kind = ? AND job_id = ?",
            self.kind, job_id,
        )  # fmt: skip
        return rows[0] if rows else None


def _claim(row: dict[str, Any]) -> Claim:
    return Claim(
        job_id=str(row["job_id"]), attempts=int(row["attempts"]), previous_owner=row.get("previous"),
        handle=row.get("handle"), cursor=int(row.get("cursor") or 0), cancel=bool(row.get("cancel")),
    )  # fmt: skip
