"""Tortoise's migration command line on the gateway's database settings.

``uv run python -m gateway.db makemigrations --name what_changed`` writes the next migration after a model
change; ``... migrate`` / ``history`` / ``sqlmigrate`` work as in Tortoise. The database is the gateway's
(``VLMGW_DATABASE_URL``, else the SQLite file in ``VLMGW_DATA_DIR``).
"""

from __future__ import annotations

import asyncio
import sys

from tortoise.cli.cli import run_cli_async


def main(argv: list[str]) -> int:
    """Run Tortoise's CLI with ``gateway.db.cli_config.TORTOISE_ORM`` (built from the settings)."""
    return asyncio.run(run_cli_async(["--config", "gateway.db.cli_config.TORTOISE_ORM", *argv]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
