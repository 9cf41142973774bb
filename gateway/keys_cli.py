"""``vlmgw keys create|grant|list|revoke``: manage platform API keys directly on the database.

A key is an admin key (may use every workspace) only with ``--admin``. ``--workspace NAME`` names one of the
user's own workspaces (a new name creates one the user owns); another user's workspace is shared only by
``vlmgw keys grant --user USER --workspace ID``.

Works with the gateway stopped or running (several gateways share the database; a revoked key stops
working everywhere within ``key_cache_ttl_s``). The database is the gateway's: ``--database-url`` /
``VLMGW_DATABASE_URL``, else the SQLite file in ``--data-dir`` / ``VLMGW_DATA_DIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TextIO

from gateway.db.connection import open_database
from gateway.db.keys import WorkspaceNotYours, create_key, grant_workspace, list_keys, revoke_key
from gateway.settings import Settings


def add_keys_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="create, list or revoke platform API keys (on the database)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="the gateway's data directory (holds the SQLite database)")
    common.add_argument("--database-url", help="database URL (e.g. postgres://user@host/db)")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser(
        "create", parents=[common], help="create a key and print it (shown once)",
        description="Create a key for USER (created if new). Each --workspace is an id or a name of one of "
        "the user's workspaces (its own or granted; a new name creates a workspace the user owns); the first "
        "is the key's default workspace. Without --workspace the key's workspace is `default`. The key is "
        "never an admin key unless --admin is given.",
    )  # fmt: skip
    create.add_argument("--user", default="user", help="the key's user (default: `user`, not an admin)")
    create.add_argument("--admin", action="store_true", help="a key of the admin user, who may use all")
    create.add_argument("--workspace", action="append", dest="workspaces", metavar="ID_OR_NAME")
    create.add_argument("--name", default="", help="a label for the key")
    grant = actions.add_parser(
        "grant", parents=[common], help="let USER use a workspace of another user (an explicit share)"
    )
    grant.add_argument("--user", required=True, help="the user to grant the workspace to (created if new)")
    grant.add_argument("--workspace", required=True, metavar="ID_OR_NAME", help="its id, or a unique name")
    actions.add_parser("list", parents=[common], help="list keys (prefix, user, workspace, use, state)")
    revoke = actions.add_parser("revoke", parents=[common], help="revoke a key by id, prefix or the key")
    revoke.add_argument("key", help="the key's id, its prefix as `keys list` shows it, or the key itself")


def run_keys(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    overrides = {"data_dir": args.data_dir, "database_url": args.database_url}
    settings = Settings.from_env(**overrides)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_run(args, settings, out))


async def _run(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    async with open_database(settings.db_url):
        try:
            return await _command(args, out)
        except WorkspaceNotYours as exc:
            print(f"vlmgw keys {args.keys_command}: {exc}", file=sys.stderr)
            return 2


async def _command(args: argparse.Namespace, out: TextIO) -> int:
    if args.keys_command == "grant":
        user, workspace = await grant_workspace(args.user, args.workspace)
        out.write(f"user {user.name} may now use workspace {workspace.name} ({workspace.id})\n")
        return 0
    if args.keys_command == "create":
        created = await create_key(
            user_name=args.user, workspaces=args.workspaces, name=args.name, admin=args.admin
        )
        out.write(f"{created.key}\n")
        names = ", ".join(f"{w.name} ({w.id})" for w in created.workspaces)
        print(f"key {created.row.id} for user {created.user.name}; workspaces: {names}", file=sys.stderr)
        print(
            "Send it as `Authorization: Token KEY` or `Bearer KEY`; it is not shown again.",
            file=sys.stderr,
        )
        return 0
    if args.keys_command == "list":
        for row in await list_keys():
            state = f"revoked {row.revoked:%Y-%m-%d %H:%M}" if row.revoked else "active"
            used = f"{row.last_used:%Y-%m-%d %H:%M}" if row.last_used else "never"
            out.write(
                f"{row.id}  {row.prefix}...  user={row.user.name}  workspace={row.workspace.name} "
                f"({row.workspace.id})  name={row.name or '-'}  last_used={used}  {state}"
                f"{'  ADMIN' if row.user.is_admin else ''}\n"
            )
        return 0
    revoked = await revoke_key(args.key)
    if revoked is None:
        print(f"vlmgw keys revoke: no key matches {args.key!r}", file=sys.stderr)
        return 1
    out.write(f"revoked {revoked.id} ({revoked.prefix}...)\n")
    return 0
