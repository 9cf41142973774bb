"""Training throughput and peak memory: ``finetune`` against TRL's ``SFTTrainer``, same model, data and steps.

Both train the same LoRA (rank 16, alpha 32, the same language-model linear layers) on the pre-trained tiny
Qwen2-VL base, on the same colour-JSON examples (tests/support/colour_task.py), with the same batch size,
steps, learning rate, schedule and seed, answer-only loss, on the same device (bf16 on a GPU that has it,
fp32 on CPU). Each run is a fresh child process, so memory figures do not leak between runs; runs of the
trainers alternate round by round so drift in the machine's speed hits all alike.

Measured per run, over the training loop only (model loading and data set preparation excluded):
- samples/s: examples trained on / wall time of ``Trainer.run`` or ``SFTTrainer.train``;
- peak memory: on CUDA, ``torch.cuda.max_memory_allocated``; on CPU, the peak resident set size sampled
  every 2 ms during training, minus the resident size just before it (what training adds), and the
  process's lifetime peak RSS (``ru_maxrss``).

TRL is run twice: with its defaults (``gradient_checkpointing=True`` in SFTConfig) and without gradient
checkpointing, which is what ``finetune`` does.

    uv run python benchmarks/finetune_vs_trl.py --steps 60 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RANK, ALPHA, LR, BATCH, SEED = 16, 32, 3e-3, 8, 0
TRAINERS = ("finetune", "trl-default", "trl-no-gc")


class RssSampler:
    """Peak resident set size of this process, sampled in a thread."""

    def __init__(self, interval_s: float = 0.002) -> None:
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._page = os.sysconf("SC_PAGE_SIZE")

    def rss(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self._page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval_s)

    def __enter__(self) -> RssSampler:
        self.baseline = self.rss()
        self.peak = self.baseline
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def _measure(train: Any, samples: int) -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with RssSampler() as rss:
        cpu0, started = os.times(), time.perf_counter()
        train()
        if cuda:
            torch.cuda.synchronize()
        elapsed, cpu1 = time.perf_counter() - started, os.times()
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {
        "samples_per_s": samples / elapsed,
        "samples_per_cpu_s": samples / cpu_s,
        "train_s": elapsed,
        "rss_added_mb": (rss.peak - rss.baseline) / 2**20,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "device": "cuda" if cuda else "cpu",
    }


def run_finetune(base: Path, data: Path, out: Path, steps: int) -> dict[str, Any]:
    import io

    from finetune.progress import Progress
    from finetune.spec import HyperParameters, TrainSpec
    from finetune.train import Trainer
    from tests.support import colour_task

    spec = TrainSpec(
        base_model=str(base), served_base_name="tiny", output_dir=str(out),
        examples=colour_task.examples(data, 4, seed=1),
        hyperparameters=HyperParameters(
            lora_rank=RANK, lora_alpha=ALPHA, lora_dropout=0.0, learning_rate=LR, batch_size=BATCH,
            max_steps=steps, seed=SEED, checkpoint_every=10**6, warmup_ratio=0.05, schedule="cosine",
        ),
    )  # fmt: skip
    trainer = Trainer(spec, Progress(out=io.StringIO(), human=False))
    trainer.setup()
    result = _measure(trainer.run, steps * BATCH)
    result["last_loss"] = trainer.curve.train[-1][1]
    return result


def run_trl(
    base: Path, data: Path, out: Path, steps: int, gradient_checkpointing: bool | None
) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import SFTConfig, SFTTrainer

    from finetune.train import language_lora_targets
    from tests.support import colour_task

    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    processor = AutoProcessor.from_pretrained(base)
    model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.bfloat16 if bf16 else torch.float32)
    rows = []
    for ex in colour_task.examples(data, 4, seed=1):
        with Image.open(ex.images[0]) as img:
            image = img.convert("RGB")
        rows.append({
            "prompt": [{"role": "user", "content": ex.user}],
            "completion": [{"role": "assistant", "content": ex.target}],
            "images": [image],
        })  # fmt: skip
    kwargs: dict[str, Any] = {}
    if gradient_checkpointing is not None:
        kwargs["gradient_checkpointing"] = gradient_checkpointing
    config = SFTConfig(
        output_dir=str(out), max_steps=steps, per_device_train_batch_size=BATCH, learning_rate=LR,
        lr_scheduler_type="cosine", warmup_steps=max(1, round(0.05 * steps)), weight_decay=0.0,
        max_grad_norm=1.0, seed=SEED, logging_steps=10**6, save_strategy="no", report_to=[],
        bf16=bf16, max_length=None, dataloader_num_workers=0, **kwargs,
    )  # fmt: skip
    peft_config = LoraConfig(
        r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=language_lora_targets(model)
    )
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=processor,
        peft_config=peft_config,
    )  # fmt: skip
    result = _measure(trainer.train, steps * BATCH)
    losses = [h["train_loss"] for h in trainer.state.log_history if "train_loss" in h]
    result["mean_loss"] = losses[-1] if losses else None
    result["gradient_checkpointing"] = trainer.args.gradient_checkpointing
    return result


def worker(name: str, steps: int, threads: int) -> None:
    import torch

    from models_store.tiny_model import TinyModelSpec, cached_tiny_model

    torch.set_num_threads(threads)

    base = cached_tiny_model(TinyModelSpec(pretrain_steps=300))
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "data", Path(tmp) / "out"
        if name == "finetune":
            result = run_finetune(base, data, out, steps)
        else:
            result = run_trl(base, data, out, steps, None if name == "trl-default" else False)
    print("RESULT " + json.dumps(result), flush=True)


def run_child(name: str, steps: int, threads: int) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cmd = [sys.executable, __file__, "--worker", name, "--steps", str(steps), "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    raise RuntimeError(f"{name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: steadier on a busy box)"
    )
    parser.add_argument("--worker", choices=TRAINERS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.threads)
        return
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in TRAINERS}
    for round_no in range(args.rounds):
        order = TRAINERS if round_no % 2 == 0 else TRAINERS[::-1]
        for name in order:
            result = run_child(name, args.steps, args.threads)
            runs[name].append(result)
            line = (
                f"round {round_no + 1} {name}: {result['samples_per_s']:.1f} samples/s, "
                f"{result['samples_per_cpu_s']:.1f} samples/CPU-s, +{result['rss_added_mb']:.0f} MB RSS"
            )
            print(line, file=sys.stderr, flush=True)
    report(runs, args.steps)


def report(runs: dict[str, list[dict[str, Any]]], steps: int) -> None:
    keys = ("samples_per_s", "samples_per_cpu_s", "rss_added_mb", "peak_rss_mb")
    med = {n: {k: statistics.median(r[k] for r in rs) for k in keys} for n, rs in runs.items()}
    device = runs["finetune"][0]["device"]
    cuda = device == "cuda"
    if cuda:
        for n, rs in runs.items():
            med[n]["cuda_peak_mb"] = statistics.median(r["cuda_peak_mb"] for r in rs)
    mem_key = "cuda_peak_mb" if cuda else "rss_added_mb"
    speed_key = "samples_per_s" if cuda else "samples_per_cpu_s"  # CPU time: steadier on a shared box
    print(f"\n{steps} steps x batch {BATCH}, LoRA r={RANK}, tiny Qwen2-VL, {device}, "
          f"median of {len(runs['finetune'])} runs\n")  # fmt: skip
    print(f"| trainer | samples/s | samples/CPU-s | training memory MB ({mem_key}) | process peak RSS MB | "
          "speed (CPU) vs it | memory vs it |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    ours = med["finetune"]
    for name in TRAINERS:
        m = med[name]
        speed = ours[speed_key] / m[speed_key]
        memory = ours[mem_key] / m[mem_key] if m[mem_key] else float("nan")
        ratio = " | " if name == "finetune" else f"{speed:.2f}x | {memory:.2f}x"
        print(f"| {name} | {m['samples_per_s']:.1f} | {m['samples_per_cpu_s']:.1f} | {m[mem_key]:.0f} | "
              f"{m['peak_rss_mb']:.0f} | {ratio} |")  # fmt: skip
    print(
        "\nspeed vs it > 1: finetune trains more samples per CPU-second (GPU: per second); "
        "memory vs it < 1: finetune's training adds less memory."
    )


if __name__ == "__main__":
    main()
