"""``python -m finetune run SPEC.json [--resume]``: train a LoRA adapter from a spec file.

Exit status: 0 when the adapter is written, 2 for an invalid spec, 1 for a training error, 128 + the
signal's number when cancelled by SIGTERM/SIGINT (after writing a checkpoint and a ``cancelled`` event).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from finetune.progress import Progress
from finetune.spec import SpecError, load_spec


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train the LoRA adapter a spec describes")
    run.add_argument("spec", help="path of the spec (JSON)")
    run.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    run.add_argument("--quiet", action="store_true", help="no human progress line on stderr")
    args = parser.parse_args(argv)
    progress = Progress(human=not args.quiet)
    try:
        spec = load_spec(args.spec)
    except SpecError as exc:
        progress.error(str(exc), problems=exc.problems)
        return 2
    from finetune.train import Cancelled, Trainer  # torch is imported only past this point

    try:
        trainer = Trainer(spec, progress)
        trainer.install_signal_handlers()
        trainer.run(resume=args.resume)
    except Cancelled as exc:
        progress.cancelled(step=exc.step, checkpoint=str(exc.path) if exc.path else None)
        return 128 + exc.signum
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        progress.error(f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
