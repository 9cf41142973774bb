"""The playground's static files, read once and named by content hash so browsers may cache them forever.

``index.html`` is a template: ``{{asset:NAME}}`` becomes the hashed URL of ``NAME`` and ``{{importmap}}`` an
import map from each module's plain URL to its hashed one, so modules import each other by plain names
(``import {api} from "./api.js"``) and still get the hashed, immutable file. The page itself is served with
``no-cache``: a new release changes the page, which points at the new files.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
ASSET_PREFIX = "/playground/assets/"
MEDIA_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
_PLACEHOLDER = re.compile(r"\{\{asset:([A-Za-z0-9_.-]+)\}\}")


@dataclass(frozen=True)
class Asset:
    name: str  # plain name, e.g. "chat.js"
    hashed_name: str  # e.g. "chat.3f2a9c1b7d4e.js"
    body: bytes
    media_type: str


class PlaygroundAssets:
    """The app's files by plain and hashed name, and the rendered page with its Content-Security-Policy."""

    def __init__(self, root: Path = STATIC_DIR) -> None:
        self._by_name: dict[str, Asset] = {}
        for path in sorted(root.iterdir()):
            if path.is_file() and path.suffix in MEDIA_TYPES:
                self._by_name[path.name] = _asset(path)
        self._by_hashed = {a.hashed_name: a for a in self._by_name.values()}
        self.page, self.csp = self._render((root / "index.html").read_text(encoding="utf-8"))

    def find(self, name: str) -> tuple[Asset, bool] | None:
        """The asset served under ``name`` and whether the name is its hashed (immutable) one."""
        if name in self._by_hashed:
            return self._by_hashed[name], True
        if name in self._by_name:
            return self._by_name[name], False
        return None

    def url(self, name: str) -> str:
        return ASSET_PREFIX + self._by_name[name].hashed_name

    def _render(self, template: str) -> tuple[str, str]:
        imports = {
            ASSET_PREFIX + a.name: ASSET_PREFIX + a.hashed_name
            for a in self._by_name.values()
            if a.name.endswith(".js")
        }
        importmap = json.dumps({"imports": imports}, indent=1, sort_keys=True)
        page = _PLACEHOLDER.sub(lambda m: self.url(m.group(1)), template).replace("{{importmap}}", importmap)
        digest = base64.b64encode(hashlib.sha256(importmap.encode()).digest()).decode()
        csp = (
            "default-src 'self'; "
            f"script-src 'self' 'sha256-{digest}'; "
            "style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; media-src 'self' data: blob:; "
            "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
        )
        return page, csp


def _asset(path: Path) -> Asset:
    body = path.read_bytes()
    digest = hashlib.sha256(body).hexdigest()[:12]
    return Asset(path.name, f"{path.stem}.{digest}{path.suffix}", body, MEDIA_TYPES[path.suffix])
