"""Fuzz the whole published API (openapi/openapi.json) with schemathesis against a running gateway.

    uv run python benchmarks/fuzz.py [--max-examples 10] [--stateful-examples 300] [--workers 2] [--seed 1]

What runs: a stand-in engine (``tests.fakes.FakeVLLM``: vLLM's OpenAI server shape, answers every chat),
a real gateway process (``vlmgw serve --engine-url`` to it, its own SQLite and store in a temporary
directory, a static API key) and ``st run`` over every operation, in all of schemathesis' phases: examples,
coverage (boundary values, missing and wrong-typed fields), fuzzing (random valid and invalid requests), then
a second run of the stateful phase alone with more scenarios (chains that create an object, then use its id
through the schema's OpenAPI links).

Checks: no server error (5xx), every response matches the published schema (status code, content type,
body), requests that break the schema are refused, deleted objects are gone, created ones can be read. Not
checked: that every schema-valid request is accepted (``positive_data_acceptance``): the gateway rightly
refuses some with a 400 for reasons no schema can state (an id that names no object, a task without a
dataset, an unknown prediction domain, PUT without ``name``).

Network: fuzzed bodies carry arbitrary URLs (images to fetch, callback URLs). The whole run therefore happens
in a fresh network namespace with only loopback up (``unshare -rn``), where any other connection fails at
once (ENETUNREACH) and no packet leaves the machine. Without ``unshare`` the script refuses to run.

Prints one JSON line: cases, failures by check, operations, seconds; exit status 0 when nothing failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
KEY = "fuzz-key"
INSIDE = "VLMGW_FUZZ_NETNS"
# Checks run on every response (schemathesis' names).
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "use_after_free",
    "ensure_resource_availability",
]
SCHEMA = ROOT / "openapi" / "openapi.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=10, help="cases per operation and phase")
    parser.add_argument("--stateful-examples", type=int, default=300, help="stateful scenarios (0: none)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-time", type=int, default=0, help="stop after this many seconds (0: none)")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    parser.add_argument(
        "--keep", type=Path, help="copy schemathesis' output, JSON report and the gateway log here"
    )
    args = parser.parse_args(argv)
    if os.environ.get(INSIDE) != "1":
        return _reexec_in_namespace(argv if argv is not None else sys.argv[1:])
    summary = run(args)
    line = json.dumps(summary)
    print(line)
    if args.json:
        args.json.write_text(line + "\n")
    return 0 if summary["ok"] else 1


def _reexec_in_namespace(argv: list[str]) -> int:
    """Run this script again inside a loopback-only network namespace (no root needed)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        print(
            "fuzz: needs `unshare` and `ip` (util-linux, iproute2) for a loopback-only namespace",
            file=sys.stderr,
        )
        return 3
    inner = f"ip link set lo up && exec {sys.executable} {Path(__file__).resolve()} " + " ".join(argv)
    env = {**os.environ, INSIDE: "1"}
    return subprocess.call(["unshare", "-rn", "sh", "-c", inner], env=env)


def run(args: argparse.Namespace) -> dict[str, object]:
    sys.path.insert(0, str(ROOT))
    from tests.fakes import FakeVLLM

    _assert_offline()
    engine = FakeVLLM(reply='{"answer": "fuzz"}')
    engine.start()
    work = Path(tempfile.mkdtemp(prefix="vlmgw-fuzz-"))
    gateway, url = _start_gateway(work, engine.url)
    started = time.monotonic()
    passes = [("examples,coverage,fuzzing", args.max_examples)]
    if args.stateful_examples:
        passes.append(("stateful", args.stateful_examples))
    results = []
    try:
        for index, (phases, examples) in enumerate(passes):
            report = work / f"report-{index}.json"
            results.append((_schemathesis(args, url, phases, examples, report), report))
    finally:
        gateway.terminate()
        try:
            gateway.wait(20)
        except subprocess.TimeoutExpired:
            gateway.kill()
        engine.stop()
    summary = summarise(results)
    summary["seconds"] = round(time.monotonic() - started, 1)
    output = "\n".join(out for out, _ in results)
    tracebacks = _server_tracebacks(work / "gateway.log")
    summary["gateway_tracebacks"] = tracebacks
    summary["ok"] = summary["ok"] and not tracebacks
    if not summary["ok"]:
        print(output[-20000:], file=sys.stderr)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        (args.keep / "schemathesis.txt").write_text(output)
        for path in [*work.glob("report-*.json"), work / "gateway.log"]:
            if path.exists():
                shutil.copy(path, args.keep / path.name)
    shutil.rmtree(work, ignore_errors=True)
    return summary


def _assert_offline() -> None:
    """Refuse to fuzz where a connection could leave the machine."""
    import socket

    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1, never routed; UDP connect sends no packet
    except OSError:
        return
    finally:
        probe.close()
    raise SystemExit("fuzz: this namespace has a route off the machine; refusing to fuzz")


def _start_gateway(work: Path, engine_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ, "VLMGW_DATA_DIR": str(work / "data"), "VLMGW_MEDIA_DECODE_ISOLATION": "thread",
        "VLMGW_MEDIA_FETCH_TIMEOUT_S": "2", "VLMGW_CALLBACK_BACKOFF_S": "0.2",
        "VLMGW_PREDICTIONS_POLL_INTERVAL_S": "0.2",
    }  # fmt: skip
    cmd = [sys.executable, "-m", "gateway", "serve", "--engine-url", engine_url, "--host", "127.0.0.1",
           "--port", str(port), "--api-key", KEY]  # fmt: skip
    log = (work / "gateway.log").open("ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("fuzz: the gateway did not start:\n" + (work / "gateway.log").read_text()[-4000:])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _schemathesis(args: argparse.Namespace, url: str, phases: str, examples: int, report: Path) -> str:
    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "schemathesis_cli.py"), "run", str(SCHEMA), "--url", url,
        "-H", f"Authorization: Bearer {KEY}", "--checks", ",".join(CHECKS), "--phases", phases,
        "--max-examples", str(examples), "--workers", str(args.workers), "--seed", str(args.seed),
        "--continue-on-failure", "--no-color", "--generation-database", "none", "--request-timeout", "30",
        "--report", "json", "--report-json-path", str(report), "--suppress-health-check", "all",
    ]  # fmt: skip
    if args.max_time:
        cmd += ["--max-time", str(args.max_time)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=report.parent, check=False)
    return done.stdout + done.stderr


def summarise(results: list[tuple[str, Path]]) -> dict[str, object]:
    """Totals over the runs, from schemathesis' JSON reports (and its output for the link coverage)."""
    totals = {"cases": 0, "cases_with_failures": 0, "unique_failures": 0, "errored": 0, "errors": 0}
    failures: list[str] = []
    for output, report in results:
        if not report.exists():
            totals["errors"] += 1
            continue
        data = json.loads(report.read_text())
        cases = data.get("test_cases", {})
        totals["cases"] += cases.get("generated", 0)
        totals["cases_with_failures"] += cases.get("with_failures", 0)
        totals["unique_failures"] += cases.get("unique_failures", 0)
        totals["errored"] += cases.get("errored", 0)
        totals["errors"] += len(data.get("errors") or [])
        failures += [
            f"{f.get('code')} {f.get('title')}: {f.get('count')}" for f in data.get("failures") or []
        ]
        links = re.search(r"API Links:\s*(\d+) covered / (\d+) selected", output)
        if links:
            totals["links_covered"], totals["links"] = int(links.group(1)), int(links.group(2))
        scenarios = re.search(r"Scenarios:\s*(\d+)", output)
        if scenarios:
            totals["stateful_scenarios"] = int(scenarios.group(1))
    bad = totals["unique_failures"] or totals["errored"] or totals["errors"]
    return {**totals, "failures": failures, "ok": totals["cases"] > 0 and not bad}


def _server_tracebacks(log: Path) -> int:
    return log.read_text(errors="replace").count("Traceback (most recent call last)") if log.exists() else 0


if __name__ == "__main__":
    sys.exit(main())
