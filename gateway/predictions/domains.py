"""Domains: named presets of a prompt and the JSON Schema of the answer, one JSON file per domain.

``gateway/predictions/domains/<domain>.json`` holds ``description``, ``media`` (``image`` or ``video``),
``prompt`` and ``schema``; the file name (without ``.json``) is the domain's name. Adding a domain is adding
a file, here or in the folder of the ``predictions_domains_dir`` setting (whose files win over built-in ones
of the same name). Files are checked when the gateway starts (a broken file stops it with the file named),
so a bad preset can never reach a request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from finetune.schema_regex import SchemaError, check_schema
from gateway.errors import BadRequestError

BUILT_IN = Path(__file__).with_name("domains")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)+$")
_KEYS = {"description", "media", "prompt", "schema"}

Media = Literal["image", "video"]


class DomainFileError(ValueError):
    """A domain file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Domain:
    name: str
    description: str
    media: Media
    prompt: str
    schema: dict[str, Any]


def read_domain(path: Path) -> Domain:
    """The domain in ``path``; ``DomainFileError`` when the file is not a sound domain."""
    name = path.name.removesuffix(".json")
    if not _NAME.match(name):
        raise DomainFileError(f"{path}: `{name}` is not a domain name (like `document.invoice`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DomainFileError(f"{path}: not readable as JSON ({exc})") from None
    if not isinstance(data, dict) or set(data) != _KEYS:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise DomainFileError(f"{path}: needs exactly the keys {sorted(_KEYS)}, has {keys}")
    if data["media"] not in ("image", "video"):
        raise DomainFileError(f"{path}: `media` must be `image` or `video`")
    if not isinstance(data["prompt"], str) or not data["prompt"].strip():
        raise DomainFileError(f"{path}: `prompt` must be a non-empty string")
    try:
        check_schema(data["schema"])
    except SchemaError as exc:
        raise DomainFileError(f"{path}: `schema` is not a usable JSON Schema: {exc}") from None
    return Domain(name, str(data["description"]), data["media"], data["prompt"], data["schema"])


class DomainRegistry:
    """The domains this gateway serves, by name."""

    def __init__(self, domains: Iterable[Domain]) -> None:
        self._domains = {d.name: d for d in domains}

    @classmethod
    def load(cls, *folders: Path | None) -> DomainRegistry:
        """Every ``*.json`` file of the folders, later folders overriding earlier ones by name."""
        found: dict[str, Domain] = {}
        for folder in folders:
            if folder is None:
                continue
            if not folder.is_dir():
                raise DomainFileError(f"{folder}: the domains folder does not exist")
            for path in sorted(folder.glob("*.json")):
                domain = read_domain(path)
                found[domain.name] = domain
        return cls(found.values())

    def all(self) -> list[Domain]:
        return sorted(self._domains.values(), key=lambda d: d.name)

    def get(self, name: str, media: Media | None = None) -> Domain:
        """The domain ``name`` (for a request about ``media``, when given); a 400 naming ``domain`` else."""
        domain = self._domains.get(name)
        if domain is None:
            raise BadRequestError(
                f"Unknown domain `{name}`. The domains are listed at GET /v1/domains, e.g. "
                + ", ".join(f"`{d}`" for d in sorted(self._domains)[:5]),
                param="domain",
                code="unknown_domain",
            )
        if media is not None and domain.media != media:
            raise BadRequestError(
                f"The domain `{name}` is for {domain.media}s; use POST /v1/{domain.media}/generate",
                param="domain",
                code="domain_media_mismatch",
            )
        return domain
