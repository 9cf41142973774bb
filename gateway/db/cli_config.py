"""``TORTOISE_ORM`` for Tortoise's command line (``python -m gateway.db``); only that command imports it."""

from __future__ import annotations

from gateway.db.connection import tortoise_config
from gateway.settings import Settings

_settings = Settings.from_env()
_settings.data_dir.mkdir(parents=True, exist_ok=True)
TORTOISE_ORM = tortoise_config(_settings.db_url)
