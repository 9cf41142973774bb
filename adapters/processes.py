"""Child processes that must never outlive the gateway: the vLLM engine and training jobs.

Each child runs in its own process group (so it and anything it forks can be signalled together), gets
``PR_SET_PDEATHSIG`` so Linux terminates it when the gateway dies even by SIGKILL, and its group is killed
by an ``atexit`` hook if the gateway exits without stopping it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGTERM this process when its parent (the gateway) dies."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


_LIVE_GROUPS: set[int] = set()


def track_group(pgid: int) -> None:
    """Remember a child's process group for the last-resort cleanup at exit."""
    _LIVE_GROUPS.add(pgid)


def kill_group(pgid: int, sig: int) -> None:
    """Signal a whole process group; forget it once it has been sent SIGKILL."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    if sig == signal.SIGKILL:
        _LIVE_GROUPS.discard(pgid)


@atexit.register
def _kill_live_groups() -> None:  # pragma: no cover - last-resort cleanup at interpreter exit
    for pgid in list(_LIVE_GROUPS):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
