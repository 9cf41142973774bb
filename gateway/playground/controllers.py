"""GET /playground (the app), GET /playground/assets/{name} (its files), GET / (browsers go to the app).

The page and its files need no key: the app asks for one in the browser and sends it with each API call.
"""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect

from gateway.errors import NotFoundError
from gateway.playground.assets import PlaygroundAssets

IMMUTABLE = "public, max-age=31536000, immutable"


class PlaygroundController(Controller):
    include_in_schema = False

    @get("/", summary="Send browsers to the playground")
    async def root(self) -> Redirect:
        return Redirect("/playground", status_code=302)

    @get("/playground", summary="The browser playground")
    async def page(self, playground: NamedDependency[PlaygroundAssets]) -> Response[str]:
        headers = {
            "Cache-Control": "no-cache",
            "Content-Security-Policy": playground.csp,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
        return Response(playground.page, media_type="text/html", headers=headers)

    @get("/playground/assets/{name:str}", summary="A playground file (hashed names are immutable)")
    async def asset(
        self, name: FromPath[str], playground: NamedDependency[PlaygroundAssets]
    ) -> Response[bytes]:
        found = playground.find(name)
        if found is None:
            raise NotFoundError(f"No playground file `{name}`.", param="name")
        asset, hashed = found
        headers = {"Cache-Control": IMMUTABLE if hashed else "no-cache", "X-Content-Type-Options": "nosniff"}
        return Response(asset.body, media_type=asset.media_type, headers=headers)
