"""A migrated, empty SQLite database for a test's data folder, migrated once per test process.

Opening a new SQLite database replays every migration (about 0.7 s: Tortoise rebuilds its model states
once per migration), and the unit tests build several hundred gateways, each on a data folder of its own.
A copy of one migrated file is the same empty database at head, in a millisecond. The migrations themselves
are tested from scratch in tests/platform/test_migrations.py.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from pathlib import Path

from gateway.db.connection import open_database

DB_FILE = "vlmgw.sqlite3"  # where Settings.db_url puts SQLite in a data folder
_template: Path | None = None
_lock = threading.Lock()


def _migrate(into: Path) -> None:
    async def run() -> None:
        async with open_database(f"sqlite://{into}"):
            pass

    errors: list[BaseException] = []

    def target() -> None:  # its own thread and event loop: callers may be inside a running loop
        try:
            asyncio.run(run())
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def seed_database(data_dir: Path) -> None:
    """Put a migrated, empty database in ``data_dir`` unless one is there already."""
    global _template
    with _lock:
        if _template is None:
            template = Path(tempfile.mkdtemp(prefix="vlmgw-db-template-")) / DB_FILE
            _migrate(template)
            _template = template
    target = data_dir / DB_FILE
    if not target.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_template, target)
