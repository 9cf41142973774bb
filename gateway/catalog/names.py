"""Model names under which trained task models are served (what clients put in ``model``)."""

from __future__ import annotations

import re
import uuid

_VERSION_NAME = re.compile(r"^task-([0-9a-f-]{36})(?:-v(\d+))?$")


def version_model_name(task_id: uuid.UUID | str, version: int) -> str:
    """One trained version of a task: ``task-<task id>-v<N>``."""
    return f"task-{task_id}-v{version}"


def task_model_name(task_id: uuid.UUID | str) -> str:
    """A task's production version, whichever it is at the time: ``task-<task id>``."""
    return f"task-{task_id}"


def parse_model_name(name: str) -> tuple[uuid.UUID, int | None] | None:
    """(task id, version or None for production) of a task model name, or None for other names."""
    match = _VERSION_NAME.match(name)
    if match is None:
        return None
    try:
        task_id = uuid.UUID(match.group(1))
    except ValueError:
        return None
    return task_id, int(match.group(2)) if match.group(2) else None
