"""The export plumbing that needs no model: format checks and GGUF refusals from config files alone,
progress events, and following the exporter child (events, failures, signals, cancellation)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from gateway.exports.runner import parse_event, run_export
from models_store.export import ExportError, ExportProgress, ExportSource, check_format
from models_store.export.gguf_support import QWEN2_SPLIT, gguf_refusal, pre_tokenizer_name

GPT2 = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
QWEN2 = {
    "type": "Sequence",
    "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
    ],
}


def test_pre_tokenizers_llama_cpp_knows_get_its_names() -> None:
    assert pre_tokenizer_name(GPT2) == "gpt-2"
    assert pre_tokenizer_name(QWEN2) == "qwen2"
    other_split = json.loads(json.dumps(QWEN2))
    other_split["pretokenizers"][0]["pattern"]["Regex"] = r"\s+"
    assert pre_tokenizer_name(other_split) is None
    assert pre_tokenizer_name({"type": "Metaspace", "replacement": "▁"}) is None
    assert pre_tokenizer_name({**GPT2, "add_prefix_space": True}) is None
    assert pre_tokenizer_name(None) is None


def base_dir(tmp_path: Path, config: dict[str, object], tokenizer: dict[str, object] | None = None) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.json").write_text(json.dumps(config))
    if tokenizer is not None:
        (tmp_path / "tokenizer.json").write_text(json.dumps(tokenizer))
    return tmp_path


QWEN2_VL = {"model_type": "qwen2_vl", "vision_config": {"temporal_patch_size": 2, "hidden_act": "quick_gelu"}}
BPE = {"model": {"type": "BPE"}, "pre_tokenizer": GPT2}


def test_gguf_refusals_name_the_reason(tmp_path: Path) -> None:
    assert gguf_refusal(base_dir(tmp_path / "ok", QWEN2_VL, BPE)) is None
    refusal = gguf_refusal(base_dir(tmp_path / "llava", {"model_type": "llava"}, BPE))
    assert refusal is not None and "`llava`" in refusal and "qwen2_vl" in refusal
    frames = {**QWEN2_VL, "vision_config": {"temporal_patch_size": 3}}
    assert "temporal_patch_size" in (gguf_refusal(base_dir(tmp_path / "t3", frames, BPE)) or "")
    assert "tokenizer.json" in (gguf_refusal(base_dir(tmp_path / "no-tok", QWEN2_VL)) or "")
    wordpiece = {"model": {"type": "WordPiece"}, "pre_tokenizer": GPT2}
    assert "BPE" in (gguf_refusal(base_dir(tmp_path / "wp", QWEN2_VL, wordpiece)) or "")
    odd = {"model": {"type": "BPE"}, "pre_tokenizer": {"type": "Whitespace"}}
    assert "pre-tokenizer" in (gguf_refusal(base_dir(tmp_path / "ws", QWEN2_VL, odd)) or "")


def test_check_format_refuses_bad_requests_before_any_work(tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    source = ExportSource(adapter_dir=adapter, base_dir=base_dir(tmp_path / "base", QWEN2_VL, BPE), name="m")
    with pytest.raises(ExportError, match="unknown format `zip`"):
        check_format("zip", source)
    with pytest.raises(ExportError, match="unknown GGUF type `q4_0`"):
        check_format("gguf", source, "q4_0")
    with pytest.raises(ExportError, match=r"adapter_model\.safetensors"):
        check_format("merged", source)
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    check_format("gguf", source, "f32")  # everything it can check without loading weights is fine


def test_file_stems_are_safe() -> None:
    source = ExportSource(adapter_dir=Path("a"), base_dir=Path("b"), name="ft:tiny:acme::x1/../v2")
    assert source.file_stem == "ft-tiny-acme-x1-v2"
    assert ExportSource(adapter_dir=Path("a"), base_dir=Path("b"), name="../..").file_stem == "model"


def test_progress_is_monotonic_and_thinned() -> None:
    progress = ExportProgress()
    progress.plan([("load", 1.0), ("save", 3.0)])
    progress.stage("load", "loading")
    for i in range(1, 101):
        progress.stage("save", "saving", i / 100)
    values = [e["progress"] for e in progress.events if e["event"] == "progress"]
    assert values[0] == 0.0 and values[-1] == 1.0 and values == sorted(values)
    assert len(values) < 60  # 2 % steps, not one event per call


def test_parse_event_keeps_what_it_knows() -> None:
    event = parse_event(b'{"event": "progress", "stage": "save", "progress": 0.5, "time": 1, "x": [1]}\n')
    assert event is not None and (event.event, event.stage, event.progress) == ("progress", "save", 0.5)
    assert parse_event(b"Loading weights: 100%\n") is None
    assert parse_event(b"[1, 2]\n") is None


def child(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "child.py"
    script.write_text(
        "import json, os, sys, time\ndef emit(**kw): print(json.dumps(kw), flush=True)\n" + body
    )
    return [sys.executable, str(script)]


async def test_run_export_relays_events_and_classifies_the_end(tmp_path: Path) -> None:
    seen: list[str] = []

    async def on_event(event: object) -> None:
        seen.append(event.event)  # type: ignore[attr-defined]

    ok = child(
        tmp_path, 'emit(event="start")\nprint("noise")\nemit(event="done", sha256="ab", archive_bytes=3)\n'
    )
    outcome = await run_export(ok, tmp_path / "ok.log", on_event)
    assert outcome.done is not None and outcome.done.sha256 == "ab" and seen == ["start", "done"]
    assert "noise" in (tmp_path / "ok.log").read_text()
    refused = child(tmp_path, 'emit(event="error", message="no GGUF for llava", refused=True)\nsys.exit(3)\n')
    outcome = await run_export(refused, tmp_path / "r.log", on_event)
    assert (outcome.done, outcome.error, outcome.refused) == (None, "no GGUF for llava", True)
    killed = child(tmp_path, "os.kill(os.getpid(), 9)\n")
    outcome = await run_export(killed, tmp_path / "k.log", on_event)
    assert outcome.error == "the exporter was killed by SIGKILL (out of memory?)"
    silent = child(tmp_path, "sys.exit(0)\n")
    outcome = await run_export(silent, tmp_path / "s.log", on_event)
    assert outcome.error is not None and "without a result" in outcome.error


async def test_cancelling_run_export_kills_the_child(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    hang = child(tmp_path, f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n")

    async def ignore(_event: object) -> None:
        return None

    task = asyncio.create_task(run_export(hang, tmp_path / "h.log", ignore))
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text():
            break
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_export_settings_come_from_the_environment() -> None:
    from gateway.settings import Settings

    settings = Settings.from_env({"VLMGW_EXPORT_TTL_S": "90", "VLMGW_EXPORT_CONCURRENCY": "2"})
    assert (settings.export_ttl_s, settings.export_concurrency) == (90.0, 2)
    assert Settings.from_env({}).export_ttl_s == 24 * 3600
