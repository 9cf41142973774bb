"""Fixtures shared by every test directory: the one session gateway + real vLLM (see session_gateway.py).

Defined once here so tests/integration and tests/e2e use the same engine in one pytest run; a directory's own
conftest may override a name (tests/unit has its own ``client`` over a fake engine).
"""

import pytest

from tests.support.session_gateway import (  # noqa: F401 - pytest finds fixtures by name in this module
    aclient,
    auth_headers,
    client,
    gateway,
    gateway_url,
    tiny_model_dir,
    trained_adapter,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser tests run last. Playwright's sync API keeps an event loop running in the main thread for as
    long as its session fixture is open, and every async test or ``asyncio.run`` after it would fail."""
    items.sort(key=lambda item: item.nodeid.startswith("tests/e2e/"))  # stable: the rest keep their order
