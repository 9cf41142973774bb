"""API keys: ``Authorization: Bearer KEY`` (OpenAI) and ``Authorization: Token KEY`` (Ximilar).

When no key is configured the API is open (a laptop on loopback); once any key exists, every ``/v1`` and
platform request must carry one. Keys given on the command line or in ``VLMGW_API_KEYS`` are compared in
constant time.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

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


async def require_api_key(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
    """Litestar guard for the API routes."""
    keys: StaticKeys = connection.app.state.api_keys
    if not keys.enabled:
        return
    token = token_from_header(connection.headers.get("authorization"))
    if token is None:
        raise AuthenticationError(
            "You didn't provide an API key. Send `Authorization: Bearer YOUR_KEY` (or `Token YOUR_KEY`)."
        )
    if not keys.valid(token):
        raise AuthenticationError("Incorrect API key provided.")
