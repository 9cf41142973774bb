"""Train a job whose files live in the model store, on a machine that shares nothing else with the gateway.

The gateway writes a job's files under ``jobs/<id>/`` in the store: ``spec.json`` (images named by paths
relative to it, ``../../images/ab/cd/<sha256>``, i.e. store keys) and ``eval.json``. A worker (a Ray job, or
the gateway's own child process when the store is a bucket):

1. materialises the job's folder (spec, plan, and the checkpoints a previous attempt pushed) and every image
   the spec names into a local mirror of the store, so the spec's relative paths hold there;
2. trains it like ``python -m finetune run`` (same JSON-line progress on stdout);
3. pushes each checkpoint to the store as soon as it is written (and drops the ones the trainer dropped), so
   another worker can resume from it if this one dies, and pushes the adapter and loss curves at the end.

With a local-folder store all of this is a no-op: the job's folder in the store is the working folder.
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from typing import Any

from finetune.checkpoint import STATE_FILE
from finetune.progress import Progress
from models_store.store import Store, join, open_store

DEFAULT_CACHE = Path.home() / ".cache" / "vlm-gateway" / "store"


class SyncingProgress(Progress):
    """Progress that also pushes checkpoints and the finished output to the store."""

    def __init__(self, store: Store, output_key: str, output: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = store
        self.output_key = output_key
        self.output = output

    def checkpoint(self, *, step: int, path: str) -> None:
        self.push_checkpoints()  # before reporting: the stdout reader may be gone (its gateway died)
        super().checkpoint(step=step, path=path)

    def done(self, *, adapter_dir: str, **fields: Any) -> None:
        self.store.push_dir(self.output, self.output_key, skip=frozenset({"checkpoints"}))
        super().done(adapter_dir=adapter_dir, **fields)

    def _push_checkpoint(self, local: Path, prefix: str) -> None:
        """The trainer state last: a checkpoint counts (``checkpoint.latest``) only once it is complete."""
        self.store.push_dir(local, prefix, skip=frozenset({STATE_FILE}))
        self.store.upload(join(prefix, STATE_FILE), local / STATE_FILE)

    def push_checkpoints(self) -> None:
        local = self.output / "checkpoints"
        prefix = join(self.output_key, "checkpoints")
        if not local.is_dir():
            return
        kept = {p.name for p in local.iterdir() if p.is_dir() and p.name.startswith("step-")}
        for step in sorted(kept):
            if not self.store.exists(join(prefix, step, STATE_FILE)):
                self._push_checkpoint(local / step, join(prefix, step))
        for key in self.store.keys(prefix):
            if key.removeprefix(prefix + "/").split("/")[0] not in kept:
                self.store.delete(key)


def spec_image_keys(job: str, spec: dict[str, Any]) -> list[str]:
    """Store keys of the images a job's spec names (relative paths from the job's folder)."""
    keys = []
    for field in ("examples", "held_out"):
        examples = spec.get(field)
        for example in examples if isinstance(examples, list) else []:
            for image in example.get("images", []):
                if not posixpath.isabs(image):
                    keys.append(posixpath.normpath(posixpath.join(job, image)))
    return sorted(set(keys))


def materialise_job(store: Store, job: str) -> Path:
    """The job's folder on this machine, with its spec's images next to it as in the store."""
    folder = store.materialise_dir(job)
    spec = json.loads((folder / "spec.json").read_bytes())
    for key in spec_image_keys(job, spec):
        store.materialise(key)
    return folder


def local_spec(folder: Path) -> Path:
    """The spec to train: as stored, or (when it names the base model by a Hugging Face id rather than a
    folder) a copy beside it naming this machine's copy of the model in its Hugging Face cache."""
    spec = json.loads((folder / "spec.json").read_bytes())
    base = str(spec.get("base_model", ""))
    if not base or Path(base).is_absolute() or (folder / base).is_dir():
        return folder / "spec.json"
    from huggingface_hub import snapshot_download

    spec["base_model"] = snapshot_download(base, local_files_only=True)  # never downloaded here
    path = folder / "spec.local.json"
    path.write_text(json.dumps(spec))
    return path


def run_store_job(url: str, job: str, *, cache: Path | None, resume: bool, quiet: bool) -> int:
    """Materialise, train and push one job; the exit status of ``python -m finetune run``."""
    from finetune.__main__ import train_spec_file

    store = open_store(url, cache or DEFAULT_CACHE)
    folder = materialise_job(store, job)
    output_dir = json.loads((folder / "spec.json").read_bytes()).get("output_dir", "output")
    progress = SyncingProgress(store, join(job, output_dir), folder / output_dir, human=not quiet)
    code = train_spec_file(local_spec(folder), progress, resume=resume)
    if code != 0:
        progress.push_checkpoints()  # a cancelled run's last checkpoint
    return code
