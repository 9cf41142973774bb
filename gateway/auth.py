"""API keys: ``Authorization: Bearer KEY`` (OpenAI) and ``Authorization: Token KEY`` (Ximilar).

Two kinds of key are accepted everywhere (``/v1`` and ``/vlm/v2``):
- database keys (``vlmgw keys create``), stored hashed, each acting as its user in its default workspace;
- static keys (``--api-key`` / ``VLMGW_API_KEYS``), compared in constant time, acting as the built-in admin
  user in the ``default`` workspace (the admin may select any workspace).

When no static key is configured and no database key was ever created, the API is open (a laptop on
loopback) and requests act as the admin. A verified database key is trusted for ``key_cache_ttl_s``
seconds before it is checked again, so a revocation takes effect on every gateway within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from litestar import Controller
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from gateway.db.keys import Principal, admin_principal, any_key_exists, verify_key
from gateway.errors import AuthenticationError

SCHEMES = ("bearer", "token")


def token_from_header(value: str | None) -> str | None:
    """The key in an Authorization header, or None when the header is missing or malformed."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() not in SCHEMES or not token.strip():
        return None
    return token.strip()


class StaticKeys:
    """Keys from settings."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = [k.encode() for k in keys if k]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def valid(self, token: str) -> bool:
        given = token.encode()
        return any(hmac.compare_digest(given, key) for key in self._keys)


class KeyCache:
    """Principals of recently verified database keys (by SHA-256 of the key), for ``ttl_s`` seconds."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._keys_exist = False
        self._no_keys_until = 0.0
        self._admin: Principal | None = None

    async def admin(self) -> Principal:
        """The admin principal (static keys, open mode); it may use every workspace, so it is cached."""
        if self._admin is None:
            self._admin = await admin_principal()
        return self._admin

    async def principal(self, token: str) -> Principal | None:
        fingerprint = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        cached = self._entries.get(fingerprint)
        if cached is not None and cached[0] > now:
            return cached[1]
        principal = await verify_key(token)
        if principal is None:
            self._entries.pop(fingerprint, None)
            return None
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[fingerprint] = (now + self.ttl_s, principal)
        return principal

    async def keys_exist(self) -> bool:
        """Whether any database key exists; once True it stays True (keys are never deleted).

        A "no" is trusted for at most a second (or ``ttl_s`` when shorter), so open mode costs no database
        query per request yet ends within a second of the first ``vlmgw keys create``.
        """
        now = time.monotonic()
        if not self._keys_exist and now >= self._no_keys_until:
            self._keys_exist = await any_key_exists()
            self._no_keys_until = now + min(self.ttl_s, 1.0)
        return self._keys_exist


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The principal of the request's key; raises ``AuthenticationError`` when it has none or a bad one."""
    state = connection.app.state
    return await principal_for(connection.headers.get("authorization"), state.api_keys, state.key_cache)


async def principal_for(authorization: str | None, static: StaticKeys, cache: KeyCache) -> Principal:
    """The principal of an ``Authorization`` header's key (framework-free: the chat fast path calls it with
    the raw header); raises ``AuthenticationError`` when it has none or a bad one."""
    token = token_from_header(authorization)
    if token is None:
        if not static.enabled and not await cache.keys_exist():
            return await cache.admin()
        raise AuthenticationError(
            "You didn't provide an API key. Send `Authorization: Bearer YOUR_KEY` (or `Token YOUR_KEY`)."
        )
    if static.enabled and static.valid(token):
        return await cache.admin()
    principal = await cache.principal(token)
    if principal is None:
        raise AuthenticationError("Incorrect API key provided.")
    return principal


async def require_api_key(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
    """Litestar guard for the API routes: authenticates and leaves the principal in ``state.principal``."""
    connection.state.principal = await authenticate(connection)


class KeyedController(Controller):
    """A controller whose every route needs an API key (``require_api_key``): the base of the API families'
    controllers; a subclass adds its ``tags`` and routes."""

    guards = [require_api_key]  # noqa: RUF012 - Litestar reads this class attribute
