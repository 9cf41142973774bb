"""Structured-output backends of vLLM (outlines, xgrammar, guidance) on the same constraints, in one run.

Part 1, no engine: the gateway's own compile times (JSON Schema -> regex with outlines_core plus numeric
bounds, and result templates) against outlines_core's bare ``build_regex_from_schema`` on the same schema.

Part 2, for each backend: one vLLM server (CPU build, tiny model) started with
``--structured-outputs-config.backend B``; sequential requests straight to vLLM (no gateway, so only the
engine's costs are measured) of:

- ``none``: unconstrained, 24 tokens (``min_tokens`` = ``max_tokens``): the baseline of the same run;
- ``schema/regex``: the benchmark JSON Schema as the regex the gateway sends (bounds enforced);
- ``schema/json``: the same schema sent natively as ``structured_outputs.json`` (the backend's own compiler);
- ``template``: a YAML result template's regex.

"cold" requests carry a constraint the engine has not seen (a fresh enum value each time, so the backend
compiles it); "cached" repeat one constraint. Latency per completion token is compared with the
unconstrained baseline (ratio); "valid" counts answers that stopped and pass the gateway's own check
(strict JSON + JSON Schema, or the template's parser) out of all answers, "stop+bad" those that stopped
but fail it (what the gateway must catch), "length" those cut off at ``max_tokens`` (160).

    flock /tmp/vlmgw-vllm.lock uv run python benchmarks/structured_backends.py [--backends outlines,xgrammar]

Only loopback traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from outlines_core.json_schema import build_regex_from_schema

from adapters.supervisor import EngineSpec, VLLMSupervisor, free_port
from finetune.schema_regex import compile_json_schema
from finetune.templates import ResultTemplate
from finetune.variables import VariableSpec
from gateway.structured.constraints import InvalidOutput, json_schema_constraint
from models_store.tiny_model import TinyModelSpec, cached_tiny_model
from tests.support.item_schema import item_schema

MODEL = "tiny"
BASE_TOKENS = 24
MAX_TOKENS = 160


def bench_schema(nonce: str = "blue") -> dict[str, Any]:
    """The schema of the issue's measurement: enum, integer range, array of short strings, nested object."""
    return item_schema(nonce)


VARIABLES = [
    VariableSpec(name="grade", type="float", min_value=0, max_value=10, step_size=0.5),  # type: ignore[arg-type]
    VariableSpec(name="condition", type="string", choices=["mint", "near_mint", "good", "poor"]),  # type: ignore[arg-type]
    VariableSpec(name="damaged", type="boolean"),  # type: ignore[arg-type]
    VariableSpec(name="explain", type="string", max_length=24),  # type: ignore[arg-type]
]
TEMPLATES = {
    "json": '{"grade": {{grade}}, "condition": "{{condition}}", "damaged": {{damaged}}, '
    '"explain": "{{explain}}"}',
    "yaml": "grade: {{grade}}\ncondition: {{condition}}\ndamaged: {{damaged}}\nexplain: {{explain}}\n",
    "csv": "grade,condition,damaged,explain\n{{grade}},{{condition}},{{damaged}},{{explain}}\n",
    "xml": "<r><grade>{{grade}}</grade><c>{{condition}}</c><d>{{damaged}}</d><e>{{explain}}</e></r>",
    "text": "Grade {{grade}}, {{condition}}; damaged: {{damaged}}. {{explain}}",
}


def yaml_template(nonce: str = "poor") -> ResultTemplate:
    variables = [
        *VARIABLES[:1],
        VariableSpec(name="condition", type="string", choices=["mint", "good", nonce]),
        *VARIABLES[2:],
    ]  # type: ignore[arg-type]
    return ResultTemplate.compile(TEMPLATES["yaml"], variables)


def timed(fn: Any, repeat: int) -> float:
    """Mean milliseconds of ``fn()`` over ``repeat`` calls."""
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat * 1000


def compile_times() -> None:
    schema = bench_schema()
    raw = json.dumps(schema)
    bare = timed(lambda: build_regex_from_schema(raw), 200)
    ours = timed(lambda: compile_json_schema(schema), 200)
    print("Part 1: gateway compile times (mean of 200, one core, no cache)")
    print(f"  outlines_core build_regex_from_schema (bounds ignored)  {bare:8.3f} ms")
    print(f"  gateway compile_json_schema (check + bounds)           {ours:8.3f} ms   x{ours / bare:.1f}")
    for fmt, text in TEMPLATES.items():
        ms = timed(lambda text=text: ResultTemplate.compile(text, VARIABLES), 100)
        size = len(ResultTemplate.compile(text, VARIABLES).regex())
        print(f"  result template, {fmt:<5} ({size:5} chars regex)                {ms:8.3f} ms")
    print(flush=True)


async def post(http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    resp = await http.post(url + "/v1/chat/completions", json=body)
    elapsed = time.perf_counter() - started
    if resp.status_code != 200:
        return elapsed, {"error": resp.text[:200]}
    return elapsed, resp.json()


def request(seed: int, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL, "messages": [{"role": "user", "content": "Describe the item."}],
        "seed": seed, "temperature": 1.0, "max_tokens": MAX_TOKENS, **extra,
    }  # fmt: skip


class Row:
    def __init__(self) -> None:
        self.cold: list[float] = []
        self.cached: list[float] = []
        self.per_token: list[float] = []
        self.valid = 0
        self.stop_invalid = 0
        self.length = 0
        self.total = 0
        self.errors: list[str] = []


async def run_case(http: httpx.AsyncClient, url: str, make: Any, check: Any, cold: int, cached: int) -> Row:
    row = Row()
    for i in range(cold + cached):
        nonce = f"c{i}x" if i < cold else "fixed"
        seconds, body = await post(http, url, make(nonce, i))
        if "error" in body:
            row.errors.append(body["error"])
            continue
        (row.cold if i < cold else row.cached).append(seconds)
        tokens = body["usage"]["completion_tokens"]
        row.per_token.append(seconds / max(tokens, 1))
        row.total += 1
        choice = body["choices"][0]
        if choice["finish_reason"] != "stop":
            row.length += 1
            continue
        try:
            check(choice["message"]["content"] or "", nonce)
            row.valid += 1
        except (InvalidOutput, ValueError):
            row.stop_invalid += 1
    return row


def schema_check(text: str, nonce: str) -> None:
    json_schema_constraint(bench_schema(nonce), None).check(text)


def template_check(text: str, nonce: str) -> None:
    yaml_template(nonce).parse(text)


async def bench_backend(backend: str, model_dir: Path, work: Path, cold: int, cached: int) -> dict[str, Row]:
    spec = EngineSpec(
        model=str(model_dir), served_name=MODEL, port=free_port(), log_path=work / f"engine-{backend}.log",
        extra_args=["--max-model-len", "2048", "--structured-outputs-config.backend", backend],
    )  # fmt: skip
    engine = VLLMSupervisor(spec, say=lambda m: print(f"[engine {backend}] {m}", file=sys.stderr))
    await engine.start()
    rows: dict[str, Row] = {}
    try:
        if not await engine.wait_ready(900):
            raise SystemExit(f"engine with backend {backend} did not start; see {spec.log_path}")
        async with httpx.AsyncClient(timeout=300) as http:
            for i in range(3):  # warm-up
                await post(http, spec.url, request(i, max_tokens=BASE_TOKENS))
            rows["none"] = await run_case(
                http, spec.url,
                lambda _n, i: request(i, max_tokens=BASE_TOKENS, min_tokens=BASE_TOKENS),
                lambda _t, _n: None, 0, cached,
            )  # fmt: skip
            rows["schema/regex"] = await run_case(
                http, spec.url,
                lambda n, i: request(i, structured_outputs={"regex": compile_json_schema(bench_schema(n))}),
                schema_check, cold, cached,
            )  # fmt: skip
            rows["schema/json"] = await run_case(
                http, spec.url,
                lambda n, i: request(i, structured_outputs={"json": bench_schema(n)}),
                schema_check, cold, cached,
            )  # fmt: skip
            rows["template"] = await run_case(
                http, spec.url,
                lambda n, i: request(i, structured_outputs={"regex": yaml_template(n).regex()}),
                template_check, cold, cached,
            )  # fmt: skip
    finally:
        await engine.stop()
    return rows


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:8.0f}" if values else f"{'-':>8}"


def report(results: dict[str, dict[str, Row]]) -> None:
    print("\nPart 2: per backend, median latency (ms), per-token ratio vs `none` of the same run, validity")
    print(
        f"{'backend':<9} {'constraint':<13} {'cold':>8} {'cached':>8} {'ms/token':>9} {'ratio':>6} "
        f"{'valid':>7} {'stop+bad':>8} {'length':>6}  errors"
    )
    for backend, rows in results.items():
        base = statistics.median(rows["none"].per_token)
        for name, row in rows.items():
            per_token = statistics.median(row.per_token) if row.per_token else float("nan")
            valid = f"{row.valid}/{row.total}" if name != "none" else "-"
            bad = f"{row.stop_invalid:8} {row.length:6}" if name != "none" else f"{'-':>8} {'-':>6}"
            first_error = row.errors[0][:70] if row.errors else ""
            print(
                f"{backend:<9} {name:<13} {ms(row.cold)} {ms(row.cached)} {per_token * 1000:9.1f} "
                f"{per_token / base:6.2f} {valid:>7} {bad}  {len(row.errors)} {first_error}"
            )


async def main_async(args: argparse.Namespace) -> None:
    compile_times()
    model_dir = cached_tiny_model(TinyModelSpec(pretrain_steps=300))
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    work = Path(tempfile.mkdtemp(prefix="vlmgw-bench-structured-"))
    results: dict[str, dict[str, Row]] = {}
    for backend in args.backends.split(","):
        results[backend] = await bench_backend(backend, model_dir, work, args.cold, args.cached)
        report({backend: results[backend]})
    print("\n=== all backends ===")
    report(results)
    print(
        f"\n{os.cpu_count()} CPUs; {args.cold} cold and {args.cached} cached requests per row; logs in {work}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="outlines,xgrammar,guidance")
    parser.add_argument("--cold", type=int, default=5, help="requests with a constraint new to the engine")
    parser.add_argument("--cached", type=int, default=15, help="requests repeating one constraint")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
