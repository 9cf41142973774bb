"""Schemathesis' command line (``st``) with ``ast.parse`` taken by one thread at a time;
``benchmarks/fuzz.py`` runs this instead of ``st``.

Why: with ``--workers 2`` two threads draw cases at once, and Hypothesis describes every filter it builds by
parsing the source of the module its lambda comes from (``ast.parse``). On CPython 3.11 the conversion of a
parsed tree to Python objects counts its depth in state shared by every thread, so two threads parsing at the
same moment can end with ``SystemError: AST constructor recursion depth mismatch`` (fixed in 3.12, where the
count is per call). Schemathesis reports that as an error of the operation being generated (not a failure of
the API) and stops covering it. Parsing one module at a time costs nothing measurable: Hypothesis caches each
module's parse, so only the first describe per module waits.
"""

from __future__ import annotations

import ast
import sys
import threading
from typing import Any

_LOCK = threading.RLock()  # re-entrant: a finaliser run during a parse may parse too
_parse = ast.parse


def _serial_parse(*args: Any, **kwargs: Any) -> ast.AST:
    with _LOCK:
        return _parse(*args, **kwargs)


def main() -> None:
    ast.parse = _serial_parse  # type: ignore[assignment]
    from schemathesis.cli import schemathesis

    sys.argv[0] = "st"
    schemathesis()


if __name__ == "__main__":
    main()
