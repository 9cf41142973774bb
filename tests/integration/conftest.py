"""The integration tests' session gateway lives in tests/support/session_gateway.py (shared with tests/e2e
through tests/conftest.py); these names stay importable from here for the tests that use them."""

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
