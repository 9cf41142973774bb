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

SECOND_ENGINE = "second_engine"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--second-engine",
        action="store_true",
        help="also run the tests marked second_engine, which start a vLLM of their own (minutes each)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The browser tests run after the others, and the engine-lifecycle tests (which kill the engine and stop
    the session gateway) after them. Playwright's sync API keeps an event loop running in the main thread
    while its browser is open, and an async test or ``asyncio.run`` in that time would fail."""

    def phase(item: pytest.Item) -> int:
        if item.nodeid.startswith("tests/e2e/"):
            return 1
        return 2 if item.nodeid.startswith("tests/integration/test_zz_engine_lifecycle.py") else 0

    items.sort(key=phase)  # stable: within a phase the usual order
    if not config.getoption("--second-engine"):
        skip = pytest.mark.skip(reason="starts a second vLLM: run with --second-engine (README, Development)")
        for item in items:
            if SECOND_ENGINE in item.keywords:
                item.add_marker(skip)
