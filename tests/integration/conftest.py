"""The integration tests' session gateway lives in tests/support/session_gateway.py (shared with tests/e2e
through tests/conftest.py); these names stay importable from here for the tests that use them."""

import httpx
import pytest

from tests.support.session_gateway import (  # noqa: F401 - re-exported
    ADAPTER,
    API_KEY,
    MODEL,
    START_TIMEOUT_S,
    TINY_SPEC,
    GatewayProcess,
    keys_cli,
    stop_gateway,
    wait_healthy,
)


@pytest.fixture(scope="module")
def engine_url(gateway: GatewayProcess) -> str:
    """The session engine's URL, for tests that put a gateway of their own in front of it."""
    url: str = httpx.get(gateway.url + "/health").json()["engines"][0]["url"]
    return url
