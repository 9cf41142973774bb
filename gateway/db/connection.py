"""Database connection: one Tortoise context per app, schema brought up to date on open.

Tortoise keeps its state in a ``TortoiseContext`` found through a context variable. The app's lifespan runs
in a different task from its requests, so ``DatabaseMiddleware`` enters the context around every request;
this also keeps two apps in one process (tests) on their own databases.

Schema: Tortoise's own migration framework (``tortoise.migrations``, Django-style numbered files under
``gateway/db/migrations/``, applied ones recorded in the ``tortoise_migrations`` table). ``open_database``
applies pending migrations before serving; on PostgreSQL it holds an advisory lock while doing so, so
several gateways starting together migrate once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import Token
from pathlib import Path
from typing import Any

from litestar.types import ASGIApp, Receive, Scope, Send
from tortoise.context import TortoiseContext, _current_context
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

log = logging.getLogger("vlmgw.db")

APP_LABEL = "models"
MODELS_MODULE = "gateway.db.models"
MIGRATIONS_MODULE = "gateway.db.migrations"
MIGRATION_LOCK_ID = 0x766C6D67  # "vlmg": PostgreSQL advisory lock key for schema upgrades


def connection_alias(db_url: str) -> str:
    """The connection's name: one per dialect, because Tortoise caches SQL text per connection name
    (``EXECUTOR_CACHE``), and a process that used SQLite and then PostgreSQL (tests) must not mix them."""
    return "postgres" if is_postgres(db_url) else "sqlite"


def tortoise_config(db_url: str) -> dict[str, Any]:
    """Tortoise configuration for the platform models on ``db_url``."""
    alias = connection_alias(db_url)
    return {
        "connections": {alias: db_url},
        "apps": {
            APP_LABEL: {
                "models": [MODELS_MODULE],
                "default_connection": alias,
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def is_postgres(db_url: str) -> bool:
    return db_url.startswith(("postgres://", "postgresql://", "asyncpg://", "psycopg://"))


def _ensure_sqlite_dir(db_url: str) -> None:
    if db_url.startswith("sqlite://") and ":memory:" not in db_url:
        Path(db_url.removeprefix("sqlite://")).expanduser().parent.mkdir(parents=True, exist_ok=True)


async def migrate_database(ctx: TortoiseContext, target: str | None = None) -> None:
    """Apply pending migrations (up to ``target``, a migration name, when given) on the context's db."""
    connection = _connection(ctx)
    executor = MigrationExecutor(connection, tortoise_config(connection_alias_of(connection))["apps"])
    targets = [MigrationTarget(APP_LABEL, target or "__latest__")]
    if connection.capabilities.dialect == "postgres":
        async with connection.acquire_connection() as raw:  # one session holds the lock
            await raw.execute(f"SELECT pg_advisory_lock({MIGRATION_LOCK_ID})")
            try:
                await executor.migrate(targets)
            finally:
                await raw.execute(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})")
    else:
        await executor.migrate(targets)


async def applied_migrations(ctx: TortoiseContext) -> list[str]:
    """Names of the migrations recorded as applied, in order."""
    connection = _connection(ctx)
    rows = await connection.execute_query_dict(
        "SELECT name FROM tortoise_migrations WHERE app = 'models' ORDER BY id"
    )
    return [str(row["name"]) for row in rows]


def connection_alias_of(connection: Any) -> str:
    """A URL-shaped stand-in that maps to the same alias as the connection (for ``tortoise_config``)."""
    return "postgres://" if connection.capabilities.dialect == "postgres" else "sqlite://"


def _connection(ctx: TortoiseContext) -> Any:
    return ctx.connections.get(ctx.default_connection or "sqlite")


@asynccontextmanager
async def open_database(
    db_url: str, *, migrate: bool = True, target: str | None = None
) -> AsyncIterator[TortoiseContext]:
    """A Tortoise context on ``db_url`` with the schema migrated; connections closed on exit."""
    _ensure_sqlite_dir(db_url)
    ctx = TortoiseContext()
    with ctx:
        await ctx.init(config=tortoise_config(db_url))
        try:
            if migrate:
                await migrate_database(ctx, target)
            yield ctx
        finally:
            await ctx.close_connections()


class DatabaseMiddleware:
    """ASGI middleware: run each request inside the app's Tortoise context (``state.db``, set in lifespan)."""

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        token = enter_app_database(self.state)
        try:
            await self.app(scope, receive, send)
        finally:
            leave_app_database(token)


def enter_app_database(state: Any) -> Token[TortoiseContext | None] | None:
    """Make the app's Tortoise context (``state.db``) current for this request; the token for
    ``leave_app_database`` (None while the app has no database: before its lifespan, after it).

    Not ``with ctx:``: that keeps the token on the shared context object, so two requests in flight
    overwrite each other's token and the first to finish resets the other's (ValueError after the response
    started). A token local to the request is always reset in the context that set it."""
    ctx: TortoiseContext | None = getattr(state, "db", None)
    return None if ctx is None else _current_context.set(ctx)


def leave_app_database(token: Token[TortoiseContext | None] | None) -> None:
    if token is not None:
        _current_context.reset(token)
