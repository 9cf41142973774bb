"""``python -m models_store.export run --adapter A --base B --format F --name N (--out DIR | --archive FILE)``

Runs one export as its own process (the gateway starts it so that an out-of-memory or a crash in torch
never takes the API down): progress as JSON lines on stdout (``models_store.export.events``), tracebacks
on stderr. Exit status: 0 done, 1 the export failed, 2 bad arguments, 3 the format cannot be made for this
model (the ``error`` event says why). Nothing is ever downloaded: the Hugging Face hub is put offline.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from models_store.crash import crashed
from models_store.export.events import ExportProgress
from models_store.export.source import FORMATS, GGUF_TYPES, ExportError, ExportRefused, ExportSource


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m models_store.export", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="export one trained model")
    run.add_argument("--adapter", type=Path, required=True, help="the PEFT adapter directory")
    run.add_argument("--base", type=Path, required=True, help="the base model directory it was trained on")
    run.add_argument("--format", choices=FORMATS, required=True)
    run.add_argument("--name", required=True, help="the model's name (files and metadata are named after it)")
    run.add_argument("--gguf-type", choices=GGUF_TYPES, default="f16", help="GGUF weight type (default f16)")
    where = run.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="write the export folder here (absent or empty)")
    where.add_argument("--archive", type=Path, help="write a tar of the export here, and FILE.sha256")
    run.add_argument("--quiet", action="store_true", help="no readable progress lines on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    progress = ExportProgress(out=sys.stdout, human=None if args.quiet else sys.stderr)
    source = ExportSource(adapter_dir=args.adapter, base_dir=args.base, name=args.name)
    from models_store.export.exporter import export_archive, export_folder

    try:
        if args.archive is not None:
            result = export_archive(source, args.format, args.archive, progress, gguf_type=args.gguf_type)
            progress.done(**result)
        else:
            files = export_folder(source, args.format, args.out, progress, gguf_type=args.gguf_type)
            progress.done(path=str(args.out), files=files)
    except ExportRefused as exc:
        progress.error(str(exc), refused=True)
        return 3
    except ExportError as exc:
        progress.error(str(exc))
        return 1
    except Exception as exc:
        return crashed(progress.error, exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
