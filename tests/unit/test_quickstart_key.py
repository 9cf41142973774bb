"""The quick start creates a first API key on the gateway's database and prints it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.db.connection import open_database
from gateway.db.keys import DEFAULT_WORKSPACE_ID, verify_key
from gateway.quickstart import first_key
from gateway.settings import Settings


def test_first_key_is_printed_and_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(data_dir=tmp_path)
    key = first_key(settings)
    assert key in capsys.readouterr().err

    async def check() -> None:
        async with open_database(settings.db_url):
            principal = await verify_key(key)
            assert principal is not None and principal.default_workspace == DEFAULT_WORKSPACE_ID
            assert not principal.is_admin  # the quick start's key is an ordinary key (issue 12)

    asyncio.run(check())
