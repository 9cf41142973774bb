"""Ximilar's image recognition page (the seed document), read as data: its curl commands, in order.

The page as stored lost its URLs (``curl -v -XGET -H '...'`` with nothing after), so each command is paired,
in the page's order, with the URL Ximilar documents for it (``PATHS``; the same paths Ximilar's own Python
client uses). Method, headers, form fields (``-F``) and JSON body (``-d``) come from the page itself; the
parser checks that the page still has exactly these commands, so a changed page fails loudly.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

NAME = "ximilar-image-recognition-api.txt"
SEED = Path(__file__).resolve().parents[2].parent / "shared" / "seeds" / NAME
SEED_COPY = Path(__file__).with_name(NAME)

# (what the page says the command does, its path under https://api.ximilar.com), in the page's order.
PATHS = [
    ("classify", "/recognition/v2/classify/"),
    ("list tasks", "/recognition/v2/task/"),
    ("create multi_class task", "/recognition/v2/task/"),
    ("create multi_label task", "/recognition/v2/task/"),
    ("delete task", "/recognition/v2/task/__TASK_ID__/"),
    ("list labels", "/recognition/v2/label/"),
    ("list labels of task", "/recognition/v2/label/?task=__TASK_ID__"),
    ("search labels", "/recognition/v2/label/?search=__SEARCH_QUERY__"),
    ("create label", "/recognition/v2/label/"),
    ("connect label to task", "/recognition/v2/task/__TASK_ID__/add-label/"),
    ("upload training image", "/recognition/v2/training-image/"),
    ("add label to image", "/recognition/v2/training-image/__IMAGE_ID__/add-label/"),
    ("images of label", "/recognition/v2/training-image/?label=__LABEL_ID__"),
    ("train", "/recognition/v2/task/__TASK_ID__/train/"),
]


@dataclass(frozen=True)
class SeedRequest:
    what: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    form: list[tuple[str, str]] = field(default_factory=list)  # -F name=value (value "@FILE;type=..." a file)
    body: str | None = None  # -d


def seed_text() -> str:
    return (SEED if SEED.exists() else SEED_COPY).read_text()


def seed_requests() -> list[SeedRequest]:
    commands = _commands(seed_text())
    if len(commands) != len(PATHS):
        raise AssertionError(f"the page has {len(commands)} curl commands; PATHS lists {len(PATHS)}")
    return [_parse(what, path, command) for (what, path), command in zip(PATHS, commands, strict=True)]


def _commands(text: str) -> list[str]:
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("curl "):
            # The search command's URL was lost around its quoted query (`'"__SEARCH_QUERY__"`).
            command = line.replace('\'"__SEARCH_QUERY__"', "'")
            while not _complete(command):
                i += 1
                command += "\n" + lines[i]
            out.append(command)
        i += 1
    return out


def _complete(command: str) -> bool:
    try:
        shlex.split(command)
    except ValueError:  # an open quote: the -d body goes on
        return False
    return True


def _parse(what: str, path: str, command: str) -> SeedRequest:
    args = shlex.split(command)[1:]
    method, headers, form, body = "GET", {}, [], None
    j = 0
    while j < len(args):
        arg = args[j]
        if arg.startswith("-X"):
            method = arg[2:]
        elif arg == "-H":
            name, _, value = args[j + 1].partition(":")
            headers[name.strip()] = value.strip()
            j += 1
        elif arg == "-F":
            name, _, value = args[j + 1].partition("=")
            form.append((name, value))
            j += 1
        elif arg == "-d":
            body = args[j + 1]
            j += 1
        j += 1
    if body is not None or form:
        method = "POST" if method == "GET" else method
    return SeedRequest(what, method, path, headers, form, body)


def replay_args(
    request: SeedRequest, subs: dict[str, str], file: bytes = b""
) -> tuple[str, str, dict[str, object]]:
    """(method, path, httpx keyword arguments) of a seed request with its placeholders filled in; ``-F``
    fields go as multipart (as curl sends them), a ``@FILE`` field with ``file``'s bytes."""

    def fill(text: str) -> str:
        for name, value in subs.items():
            text = text.replace(name, value)
        return text

    kwargs: dict[str, object] = {"headers": {k: fill(v) for k, v in request.headers.items()}}
    if request.form:
        parts: list[tuple[str, tuple[str | None, bytes | str, str] | tuple[None, str]]] = []
        for name, value in request.form:
            if value.startswith("@"):
                mime = value.partition(";type=")[2] or "application/octet-stream"
                parts.append((name, ("image.jpg", file, mime)))
            else:
                parts.append((name, (None, fill(value))))
        kwargs["files"] = parts
    if request.body is not None:
        kwargs["content"] = fill(request.body).encode()
    return request.method, fill(request.path), kwargs
