"""How the child-process commands (``python -m finetune``, ``python -m models_store.export``) end on an
unexpected error: the traceback on stderr for the log, one ``error`` event naming the exception for the
gateway that reads their events, and exit status 1."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable


def crashed(report_error: Callable[[str], object], exc: BaseException) -> int:
    """Report ``exc`` (while it is being handled) through ``report_error``; the exit status."""
    traceback.print_exc(file=sys.stderr)
    report_error(f"{type(exc).__name__}: {exc}")
    return 1
