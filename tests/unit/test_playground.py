"""The playground is served by the gateway: the page, its hashed immutable files, / -> /playground, no key."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from litestar.testing import AsyncTestClient

from gateway.playground.assets import STATIC_DIR, PlaygroundAssets
from tests.fakes import FakeVLLM


async def test_root_sends_browsers_to_the_playground(client: Any) -> None:
    response = await client.get("/", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == "/playground"


async def test_the_page_names_hashed_assets_that_are_served_immutable(client: Any) -> None:
    page = await client.get("/playground")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    urls = re.findall(r'"(/playground/assets/[^"]+)"', page.text)
    hashed = [u for u in urls if re.search(r"\.[0-9a-f]{12}\.(js|css|svg)$", u)]
    assert any(u.endswith(".js") for u in hashed) and any(u.endswith(".css") for u in hashed)
    for url in hashed:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    plain = await client.get("/playground/assets/main.js")
    assert plain.status_code == 200 and plain.headers["cache-control"] == "no-cache"
    assert plain.headers["content-type"].startswith("text/javascript")


async def test_an_unknown_asset_is_a_404_in_openai_shape(client: Any) -> None:
    response = await client.get("/playground/assets/nope.js")
    assert response.status_code == 404
    assert response.json()["error"]["param"] == "name"


async def test_the_page_needs_no_key_while_the_api_does(
    make_client: Callable[..., AsyncTestClient[Any]], fake_engine: FakeVLLM
) -> None:
    async with make_client(fake_engine, api_keys=["secret"]) as client:
        assert (await client.get("/playground")).status_code == 200
        assert (await client.get("/v1/models")).status_code == 401


def test_every_module_import_resolves_to_a_shipped_file() -> None:
    assets = PlaygroundAssets()
    for path in STATIC_DIR.glob("*.js"):
        for name in re.findall(r'from "\./([A-Za-z0-9_.-]+)"', path.read_text()):
            assert assets.find(name) is not None, f"{path.name} imports missing {name}"
            assert f'"/playground/assets/{name}"' in assets.page, f"{name} is not in the import map"


def test_nothing_is_loaded_from_another_host() -> None:
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        assert not re.search(r'(src|href)="(https?:)?//', text), path.name
        assert not re.search(r"url\(\s*['\"]?(https?:)?//", text), path.name
        assert not re.search(r'import[^;]*"(https?:)?//', text), path.name
