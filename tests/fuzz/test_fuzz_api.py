"""Fuzz the whole published API in CI: schemathesis against a real gateway process (stand-in engine).

``benchmarks/fuzz.py`` does the work (see its docstring): a loopback-only network namespace, a gateway on its
own SQLite, every operation in every phase (examples, coverage, fuzzing, stateful chains through the schema's
links). Here: at least 5,000 cases, no server error, no response that breaks the published schema, no request
that breaks it accepted. About a minute on 2 cores.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MIN_CASES = 5000


def loopback_only_namespace_available() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rn", "ip", "link", "set", "lo", "up"], capture_output=True, check=False
    )
    return probe.returncode == 0


@pytest.mark.timeout(600)
def test_the_published_api_survives_fuzzing(tmp_path: Path) -> None:
    if not loopback_only_namespace_available():
        pytest.skip(
            "no unprivileged network namespace here (unshare -rn); fuzzed URLs must not leave the machine"
        )
    out = tmp_path / "summary.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fuzz.py"), "--max-examples", "10", "--stateful-examples",
         "300", "--json", str(out), "--keep", str(tmp_path / "fuzz")],
        capture_output=True, text=True, cwd=ROOT, timeout=580, check=False,
    )  # fmt: skip
    assert out.exists(), done.stdout[-3000:] + done.stderr[-6000:]
    summary = json.loads(out.read_text())
    assert summary["cases"] >= MIN_CASES, summary
    assert summary["stateful_scenarios"] > 0 and summary["links_covered"] > 0, summary
    assert summary["ok"] and summary["gateway_tracebacks"] == 0, (summary, done.stderr[-8000:])
