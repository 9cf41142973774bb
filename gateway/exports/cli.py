"""``vlmgw export MODEL --format F --out DIR``: export a trained model from the data directory, offline.

No gateway needs to run: the model is looked up in the gateway's database (``--data-dir`` /
``--database-url`` as for ``serve``), its adapter and base model are read from disk, and the export is
written to DIR (created; it must be absent or empty) with a ``SHA256SUMS`` file. MODEL is
``task-<task id>-v<N>``, ``task-<task id>`` (the production version), a model version id, or a model of
the fine-tuning API: ``ft:<base>:<suffix>:<job>`` or one of its checkpoints (``...:ckpt-step-<N>``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
from pathlib import Path
from typing import TextIO

from gateway.db.connection import open_database
from gateway.errors import GatewayError
from gateway.exports.sources import BaseModels, export_source, trained_by_name
from gateway.settings import Settings
from gateway.training.service import local_adapter_path
from models_store.export import FORMATS, GGUF_TYPES, ExportError, ExportRefused, ExportSource, stderr_progress
from models_store.store import open_store


def add_export_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = sub.add_parser(
        "export", help="export a trained model as adapter, merged safetensors, GGUF or .pt (offline)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )  # fmt: skip
    export.add_argument(
        "model",
        help="task-<task id>-v<N>, task-<task id>, a model version id, or ft:<base>:<suffix>:<job>[...]",
    )
    export.add_argument("--format", choices=FORMATS, required=True)
    export.add_argument("--out", type=Path, required=True, help="the folder to write (absent or empty)")
    export.add_argument("--gguf-type", choices=GGUF_TYPES, default="f16", help="GGUF weights (default f16)")
    export.add_argument(
        "--base-model", type=Path, help="the base model's directory, if the training job's is not on disk"
    )
    export.add_argument("--data-dir", help="the gateway's data directory (database, store, jobs)")
    export.add_argument("--database-url", help="database URL (e.g. postgres://user@host/db)")


def cmd_export(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    settings = Settings.from_env(data_dir=args.data_dir, database_url=args.database_url)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never reach for the Hub
    try:
        source = asyncio.run(_source(args, settings))
    except GatewayError as exc:
        print(f"vlmgw export: {exc.message}", file=sys.stderr)
        return 1
    from models_store.export.exporter import export_folder

    try:
        export_folder(source, args.format, args.out, stderr_progress(), gguf_type=args.gguf_type)
    except ExportRefused as exc:
        print(f"vlmgw export: cannot export {source.name} as {args.format}: {exc}", file=sys.stderr)
        return 3
    except ExportError as exc:
        print(f"vlmgw export: {exc}", file=sys.stderr)
        return 1
    out.write(f"{args.out}\n")
    return 0


async def _source(args: argparse.Namespace, settings: Settings) -> ExportSource:
    """The model's adapter and base directories, read from the gateway's database."""
    async with open_database(settings.db_url):
        trained = await trained_by_name(args.model, None)
    store = open_store(settings.store_location, settings.store_cache_dir)
    adapter_path = functools.partial(local_adapter_path, store)
    if args.base_model is not None:  # the operator's directory wins over the training job's
        bases = BaseModels({trained.base_model: str(args.base_model)})
        return export_source(trained, None, bases, adapter_path)
    served = {settings.engine_name: settings.model} if settings.model else {}
    return export_source(trained, store.local_path("jobs"), BaseModels(served), adapter_path)
