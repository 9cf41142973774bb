"""`vlmgw keys`: no admin key unless asked for, workspaces owned, another user's workspace only by a grant."""

from __future__ import annotations

import argparse
import asyncio
import io
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import build_parser
from gateway.db.connection import open_database
from gateway.db.keys import DEFAULT_WORKSPACE_ID, Principal, verify_key
from gateway.keys_cli import run_keys
from gateway.settings import Settings


def keys(tmp_path: Path, *argv: str) -> tuple[int, str]:
    """Run `vlmgw keys ...` on the SQLite database in ``tmp_path``; the exit code and stdout."""
    args: argparse.Namespace = build_parser().parse_args(["keys", *argv, "--data-dir", str(tmp_path)])
    out = io.StringIO()
    return run_keys(args, out), out.getvalue().strip()


def principal(tmp_path: Path, key: str) -> Principal:
    async def check() -> Any:
        async with open_database(Settings(data_dir=tmp_path).db_url):
            return await verify_key(key)

    found = asyncio.run(check())
    assert found is not None
    return found  # type: ignore[no-any-return]


def test_keys_are_not_admin_unless_asked_for(tmp_path: Path) -> None:
    code, key = keys(tmp_path, "create")
    assert code == 0
    plain = principal(tmp_path, key)
    assert not plain.is_admin and plain.default_workspace == DEFAULT_WORKSPACE_ID
    code, key = keys(tmp_path, "create", "--admin")
    assert code == 0 and principal(tmp_path, key).is_admin
    code, listing = keys(tmp_path, "list")
    assert [line.endswith("ADMIN") for line in listing.splitlines()] == [False, True]


def test_the_admin_user_name_alone_does_not_make_an_admin_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = keys(tmp_path, "create", "--user", "admin")
    assert (code, out) == (2, "")
    assert "--admin" in capsys.readouterr().err


def test_two_users_who_pick_the_same_name_get_two_workspaces(tmp_path: Path) -> None:
    _, alice = keys(tmp_path, "create", "--user", "alice", "--workspace", "team")
    _, bob = keys(tmp_path, "create", "--user", "bob", "--workspace", "team")
    a, b = principal(tmp_path, alice), principal(tmp_path, bob)
    assert a.default_workspace != b.default_workspace
    assert a.default_workspace not in b.workspaces and b.default_workspace not in a.workspaces
    _, again = keys(tmp_path, "create", "--user", "alice", "--workspace", "team")
    assert principal(tmp_path, again).default_workspace == a.default_workspace  # her own, found by name


def test_another_users_workspace_needs_an_explicit_grant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, alice = keys(tmp_path, "create", "--user", "alice", "--workspace", "team")
    team = str(principal(tmp_path, alice).default_workspace)
    code, out = keys(tmp_path, "create", "--user", "bob", "--workspace", team)
    assert (code, out) == (2, "")
    assert "keys grant" in capsys.readouterr().err
    code, out = keys(tmp_path, "grant", "--user", "bob", "--workspace", team)
    assert code == 0 and team in out
    code, bob = keys(tmp_path, "create", "--user", "bob", "--workspace", team)
    assert code == 0 and str(principal(tmp_path, bob).default_workspace) == team
