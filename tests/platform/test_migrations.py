"""The schema's upgrade path: a database made by an older version, holding data, upgrades without loss.

Runs on SQLite and (when reachable) on PostgreSQL, each on a database of its own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tortoise.migrations.autodetector import MigrationAutodetector

from gateway.db import models as db
from gateway.db.connection import (
    APP_LABEL,
    MIGRATIONS_MODULE,
    MODELS_MODULE,
    applied_migrations,
    open_database,
)
from gateway.db.keys import create_key, grant_workspace, verify_key
from tests.platform.conftest import scratch_database

FIRST = "0001_initial"


@pytest.fixture(params=["sqlite", "postgres"])
async def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with scratch_database(
        request.param, tmp_path / "old.sqlite3", "vlmgw_mig", "the SQLite upgrade ran"
    ) as url:
        yield url


def run(coro: object) -> None:
    """Each phase in a fresh loop and context, like separate gateway versions starting up."""
    asyncio.run(coro)  # type: ignore[arg-type]


async def test_upgrade_from_the_first_schema_keeps_data(fresh_url: str) -> None:
    ids: dict[str, str] = {}

    async def old_version() -> None:
        async with open_database(fresh_url, target=FIRST) as ctx:
            assert await applied_migrations(ctx) == [FIRST]
            conn = ctx.connections.get(ctx.default_connection or "")
            columns = await _columns(conn, "api_key")
            assert "last_used" not in columns  # really the old schema
            ws_id = uuid.uuid4()  # in the old schema's columns (today's model has more)
            await conn.execute_query(
                f"INSERT INTO workspace (id, name, created) VALUES ('{ws_id}', 'old-ws', CURRENT_TIMESTAMP)"
            )
            dataset = await db.Dataset.create(workspace_id=ws_id, name="old data", version="2025-01-01",
                                              result_template='{"g": {{g}}}')  # fmt: skip
            variable = await db.Variable.create(dataset=dataset, name="g", type="integer", required=True)
            sample = await db.Sample.create(dataset=dataset, name="s1", input_meta_data={"k": "v"})
            await db.VariableValue.create(sample=sample, variable=variable, value={"value": 4})
            ids.update(ws=str(ws_id), dataset=str(dataset.id), sample=str(sample.id))

    async def new_version() -> None:
        async with open_database(fresh_url) as ctx:
            assert (await applied_migrations(ctx))[0] == FIRST and len(await applied_migrations(ctx)) >= 2
            dataset = await db.Dataset.get(id=ids["dataset"])
            assert (dataset.name, dataset.result_template) == ("old data", '{"g": {{g}}}')
            sample = await db.Sample.get(id=ids["sample"])
            assert sample.input_meta_data == {"k": "v"}
            value = await db.VariableValue.get(sample_id=sample.id)
            assert value.value == {"value": 4}
            await grant_workspace("after-upgrade", ids["ws"])  # a workspace from before owners: grant it
            created = await create_key(user_name="after-upgrade", workspaces=[ids["ws"]])
            principal = await verify_key(created.key)  # writes the column the upgrade added
            assert principal is not None and str(principal.default_workspace) == ids["ws"]
            assert (await db.ApiKey.get(id=created.row.id)).last_used is not None

    await asyncio.to_thread(run, old_version())
    await asyncio.to_thread(run, new_version())
    await asyncio.to_thread(run, new_version())  # a second start finds nothing to do and changes nothing


async def test_exports_survive_the_upgrade_that_lets_them_name_fine_tuned_models(fresh_url: str) -> None:
    """0013: an export made before it keeps its version; afterwards an export may point at a fine-tuning
    job instead (its version column is nullable), and deleting either owner deletes its exports."""
    ids: dict[str, uuid.UUID] = {}

    async def before() -> None:
        async with open_database(fresh_url, target="0012_workspace_owners") as ctx:
            conn = ctx.connections.get(ctx.default_connection or "")
            assert "fine_tuning_job_id" not in await _columns(conn, "export_job")
            ws = await db.Workspace.create(name="w")
            task = await db.Task.create(workspace_id=ws.id, name="t")
            version = await db.ModelVersion.create(task=task, version=1, base_model="tiny", adapter_dir="a")
            export_id = uuid.uuid4()  # in the old schema's columns
            await conn.execute_query(
                "INSERT INTO export_job (id, workspace_id, version_id, model, format, gguf_type, status, "
                "stage, progress, events, file_name, sha256, created) VALUES "
                f"('{export_id}', '{ws.id}', '{version.id}', 'task-x-v1', 'merged', '', 'succeeded', "
                "'done', 1.0, '[]', 'x.tar', '', CURRENT_TIMESTAMP)"
            )
            ids.update(ws=ws.id, version=version.id, export=export_id)

    async def after() -> None:
        async with open_database(fresh_url):
            old = await db.ExportJob.get(id=ids["export"])
            assert (old.version_id, old.fine_tuning_job_id, old.format) == (ids["version"], None, "merged")
            run = await db.TrainingJob.create(task=None, status="succeeded")
            ft = await db.FineTuningJob.create(
                id=run.id, workspace_id=ids["ws"], training_job=run, model="tiny", training_file="file-0"
            )
            new = await db.ExportJob.create(
                workspace_id=ids["ws"], fine_tuning_job=ft, model="ft:x", format="pt"
            )
            assert new.version_id is None
            await db.ModelVersion.filter(id=ids["version"]).delete()
            await db.FineTuningJob.filter(id=ft.id).delete()
            assert not await db.ExportJob.filter(id__in=[old.id, new.id]).exists()

    await asyncio.to_thread(run, before())
    await asyncio.to_thread(run, after())


async def test_models_and_migrations_agree() -> None:
    """A model change without its migration file fails here: run `python -m gateway.db makemigrations`."""

    async def pending() -> int:
        async with open_database("sqlite://:memory:", migrate=False) as ctx:
            assert ctx.apps is not None
            config = {APP_LABEL: {"models": [MODELS_MODULE], "migrations": MIGRATIONS_MODULE}}
            return len(await MigrationAutodetector(ctx.apps, config).changes())

    assert await asyncio.to_thread(asyncio.run, pending()) == 0


async def _columns(conn: object, table: str) -> set[str]:
    dialect = conn.capabilities.dialect  # type: ignore[attr-defined]
    if dialect == "sqlite":
        rows = await conn.execute_query_dict(f"PRAGMA table_info({table})")  # type: ignore[attr-defined]
        return {row["name"] for row in rows}
    rows = await conn.execute_query_dict(  # type: ignore[attr-defined]
        "SELECT column_name AS name FROM information_schema.columns WHERE table_name = $1", [table]
    )
    return {row["name"] for row in rows}
