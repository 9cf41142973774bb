"""vlm.run's ``/v1/image/generate`` page (the seed document), read as data: its curl request, the domains
and statuses it lists. Tests replay the request as written, with only the host, the key and the
``<string>`` placeholders filled in."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NAME = "vlmrun-image-generate-api.txt"
SEED = Path(__file__).resolve().parents[2].parent / "shared" / "seeds" / NAME
SEED_COPY = Path(__file__).with_name(NAME)


@dataclass(frozen=True)
class SeedRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any]


def seed_text() -> str:
    return (SEED if SEED.exists() else SEED_COPY).read_text()


def seed_request() -> SeedRequest:
    """The page's one curl command, parsed like a shell would."""
    lines = seed_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("curl "))
    command = ""
    for line in lines[start:]:
        command = command[:-1] + " " + line.strip() if command.endswith("\\") else command + "\n" + line
        if not command.rstrip().endswith("\\") and _complete(command):
            break
    args = shlex.split(command)[1:]
    method, url, headers, data = "GET", "", {}, ""
    for flag, value in zip(args[::2], args[1::2], strict=True):
        if flag == "--request":
            method = value
        elif flag == "--url":
            url = value
        elif flag == "--header":
            name, _, text = value.partition(":")
            headers[name.strip()] = text.strip()
        elif flag == "--data":
            data = value
    return SeedRequest(method, url, headers, json.loads(data))


def _complete(command: str) -> bool:
    try:
        shlex.split(command)
    except ValueError:  # an open quote: the --data body goes on
        return False
    return True


def _options_after(marker: str) -> list[str]:
    lines = [line.strip() for line in seed_text().splitlines()]
    start = lines.index(marker)
    first = lines.index("Available options:", start) + 1
    options = []
    for line in lines[first:]:
        options.append(line.rstrip(","))
        if not line.endswith(","):
            break
    return options


def seed_domains() -> list[str]:
    """The domains the page lists for ``domain``."""
    return _options_after("domain")


def seed_statuses() -> list[str]:
    return _options_after("status")
