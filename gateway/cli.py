"""The ``vlmgw`` command: serve | tiny-model | quickstart | openapi | keys | export.

``vlmgw serve --model M [-- VLLM_ARGS...]``: everything after a bare ``--`` is passed to vLLM unchanged.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.exports.cli import add_export_parser, cmd_export
from gateway.keys_cli import add_keys_parser, run_keys
from gateway.settings import Settings


def _serve_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model to spawn vLLM for: a local directory or a Hugging Face id")
    parser.add_argument(
        "--served-model-name", help="name clients use for the model (default: directory name)"
    )
    parser.add_argument(
        "--engine-url", action="append", dest="engine_urls", metavar="URL",
        help="use a running vLLM server instead of spawning one (repeatable: replicas)",
    )  # fmt: skip
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8000)")
    parser.add_argument("--data-dir", type=Path, help="where logs, the database and stored files live")
    parser.add_argument(
        "--database-url", help="platform database (default: SQLite in the data dir; postgres://... to share)"
    )
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="require this API key (repeatable); default: no key needed",
    )
    parser.add_argument(
        "--engine-port", type=int, help="port for the spawned vLLM server (default: a free one)"
    )
    parser.add_argument(
        "--structured-backend",
        choices=["outlines", "xgrammar", "guidance"],
        help="structured-output backend of the spawned vLLM (default outlines; see benchmarks/README.md)",
    )
    parser.add_argument(
        "--adapter", action="append", dest="adapters", metavar="NAME=DIR",
        help="serve the LoRA adapter in DIR as model NAME (repeatable); loaded into vLLM on first use",
    )  # fmt: skip
    scale = parser.add_argument_group("scaling out (README: Scaling out)")
    scale.add_argument(
        "--store-url", help="model store: a folder (default DATA_DIR/store) or s3://bucket/prefix"
    )
    scale.add_argument(
        "--training-backend", choices=["local", "ray"], help="where training runs (local children or Ray)"
    )
    scale.add_argument("--ray-address", help="Ray's job API (the dashboard), e.g. http://ray-head:8265")
    scale.add_argument(
        "--engine-adapter-source", choices=["path", "store"],
        help="hand engines adapter folders (same host) or let them resolve names from the store",
    )  # fmt: skip
    parser.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--access-log", action="store_true", default=None, help="log every HTTP request")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vlmgw", description="vlm-gateway: OpenAI-compatible VLM gateway on vLLM"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve",
        help="start the gateway (and a supervised vLLM server)",
        epilog="Arguments after a bare `--` go to vLLM, e.g. `-- --max-model-len 4096`.",
    )
    _serve_flags(serve)

    tiny = sub.add_parser("tiny-model", help="build the tiny offline Qwen2-VL test model into DIR")
    tiny.add_argument("dir", type=Path)
    tiny.add_argument(
        "--pretrain-steps",
        type=int,
        default=0,
        help="briefly pre-train the random model on generated captions (e.g. 300)",
    )
    tiny.add_argument("--seed", type=int, default=0)

    spec = sub.add_parser(
        "openapi", help="print the OpenAPI document (or --write it to openapi/openapi.json)"
    )
    spec.add_argument("--write", action="store_true", help="write openapi/openapi.json in the source tree")

    add_keys_parser(sub)
    add_export_parser(sub)

    quick = sub.add_parser(
        "quickstart",
        help="build the tiny model, start gateway and engine, show a call, fine-tune and ask a demo task",
    )
    _serve_flags(quick)
    quick.add_argument(
        "--no-training", action="store_true", help="skip the fine-tuning demo (about 2 minutes on a CPU)"
    )
    return parser


def settings_from_args(args: argparse.Namespace, engine_args: list[str]) -> Settings:
    names = (
        "model",
        "served_model_name",
        "engine_urls",
        "host",
        "port",
        "data_dir",
        "database_url",
        "api_keys",
        "engine_port",
        "log_level",
        "access_log",
        "structured_backend",
        "adapters",
        "store_url",
        "training_backend",
        "ray_address",
        "engine_adapter_source",
    )
    overrides = {name: getattr(args, name, None) for name in names}
    if engine_args:
        overrides["engine_args"] = engine_args
    return Settings.from_env(**overrides)


def _split_engine_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    argv = list(argv)
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return argv, []


def cmd_serve(settings: Settings) -> int:
    from gateway.server import run_server

    if settings.model is None and not settings.engine_urls:
        print("vlmgw serve: give --model PATH_OR_HF_ID (spawns vLLM) or --engine-url URL", file=sys.stderr)
        return 2
    return run_server(settings)


def cmd_tiny_model(args: argparse.Namespace) -> int:
    from models_store.tiny_model import TinyModelSpec, install_tiny_model

    spec = TinyModelSpec(seed=args.seed, pretrain_steps=args.pretrain_steps)
    out = install_tiny_model(args.dir, spec, progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(out)
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    from gateway.openapi_doc import render_openapi, write_openapi

    if args.write:
        print(write_openapi())
    else:
        sys.stdout.write(render_openapi())
    return 0


def cmd_quickstart(settings: Settings, training: bool) -> int:
    from gateway.quickstart import run_quickstart

    return run_quickstart(settings, training=training)


def main(argv: Sequence[str] | None = None) -> int:
    own, engine_args = _split_engine_args(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(own)
    if args.command == "tiny-model":
        return cmd_tiny_model(args)
    if args.command == "openapi":
        return cmd_openapi(args)
    if args.command == "keys":
        return run_keys(args)
    if args.command == "export":
        return cmd_export(args)
    try:
        settings = settings_from_args(args, engine_args)
    except ValueError as exc:
        print(f"vlmgw: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return cmd_serve(settings)
    return cmd_quickstart(settings, training=not args.no_training)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
