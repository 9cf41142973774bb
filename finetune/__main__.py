"""``python -m finetune run SPEC.json [--resume]``: train a LoRA adapter from a spec file.

``python -m finetune job --store URL --job jobs/ID [--resume]``: the same for a job whose files live in the
model store (a training worker that shares nothing with the gateway but the store; ``finetune.store_job``).

Exit status: 0 when the adapter is written, 2 for an invalid spec, 1 for a training error, 128 + the
signal's number when cancelled by SIGTERM/SIGINT (after writing a checkpoint and a ``cancelled`` event).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from finetune.progress import Progress
from finetune.spec import SpecError, load_spec
from models_store.crash import crashed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train the LoRA adapter a spec describes")
    run.add_argument("spec", help="path of the spec (JSON)")
    run.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    run.add_argument("--quiet", action="store_true", help="no human progress line on stderr")
    job = sub.add_parser("job", help="train a job whose spec, images and checkpoints are in the model store")
    job.add_argument("--store", required=True, help="the store's URL (a folder or s3://bucket/prefix)")
    job.add_argument("--job", required=True, help="the job's key prefix in the store (jobs/<id>)")
    job.add_argument("--cache", type=Path, help="local copy of the store's files (default: ~/.cache)")
    job.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    job.add_argument("--quiet", action="store_true", help="no human progress line on stderr")
    args = parser.parse_args(argv)
    if args.command == "job":
        from finetune.store_job import run_store_job

        return run_store_job(args.store, args.job, cache=args.cache, resume=args.resume, quiet=args.quiet)
    progress = Progress(human=not args.quiet)
    return train_spec_file(args.spec, progress, resume=args.resume)


def train_spec_file(spec_path: str | Path, progress: Progress, *, resume: bool) -> int:
    """Load, validate and train one spec file, reporting through ``progress``; the exit status."""
    try:
        spec = load_spec(spec_path)
    except SpecError as exc:
        progress.error(str(exc), problems=exc.problems)
        return 2
    from finetune.train import Cancelled, Trainer  # torch is imported only past this point

    try:
        trainer = Trainer(spec, progress)
        trainer.install_signal_handlers()
        trainer.run(resume=resume)
    except Cancelled as exc:
        progress.cancelled(step=exc.step, checkpoint=str(exc.path) if exc.path else None)
        return 128 + exc.signum
    except Exception as exc:
        return crashed(progress.error, exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
