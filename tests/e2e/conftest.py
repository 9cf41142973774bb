"""Browser tests: Playwright drives Debian's Chromium (/usr/bin/chromium; never a browser download) against
the session gateway + real vLLM (tests/support/session_gateway.py, shared with tests/integration).

The browser acts in a workspace of its own, through a database key made with ``vlmgw keys create``, so the
playground is shown working with a stored key and the data it creates never meets the integration tests'.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.session_gateway import MODEL, GatewayProcess, keys_cli

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
CHROMIUM = Path(os.environ.get("VLMGW_CHROMIUM", "/usr/bin/chromium"))
TIMEOUT_MS = 60_000

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

expect.set_options(timeout=TIMEOUT_MS)  # answers on a loaded 2-core machine take more than the default 5 s


def screenshot(page: Page, name: str) -> None:
    """Save a screenshot for the README when VLMGW_SCREENSHOT_DIR is set (e.g. docs/); a no-op otherwise."""
    folder = os.environ.get("VLMGW_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


@dataclass(frozen=True)
class BrowserUser:
    """A workspace of its own: the key the browser types in, and an API client acting as the same user."""

    key: str
    api: httpx.Client


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (scripts/test.sh does it)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def user(gateway: GatewayProcess) -> Iterator[BrowserUser]:
    key = keys_cli(gateway, "create", "--user", "browser", "--workspace", "playground-e2e")
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as api:
        yield BrowserUser(key, api)


@pytest.fixture
def page(browser: Browser, gateway: GatewayProcess, user: BrowserUser) -> Iterator[Page]:
    """The playground at 1280x800 with the key entered once; fails the test on any script error."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(gateway.url + "/")
    assert tab.url.endswith("/playground#chat")
    tab.get_by_test_id("api-key-input").fill(user.key)
    tab.get_by_test_id("api-key-input").press("Enter")
    tab.locator(f'[data-testid=model-select] option[value="{MODEL}"]').wait_for(state="attached")
    yield tab
    context.close()
    assert not errors, f"script errors in the page: {errors}"
