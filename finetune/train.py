"""LoRA fine-tuning of a vision-language model: a plain, seeded training loop.

What it does, and why:

- LoRA (peft) on the language model's linear layers only. vLLM drops LoRA weights on the vision tower and
  the projector, so training them would make the served model differ from the trained one.
- The loss is computed on the answer tokens only, and only those positions go through the output
  projection (``lm_head``): with a 150k-token vocabulary the full ``[batch, tokens, vocab]`` logits tensor
  is most of the activation memory of a small VLM, and the prompt positions would be thrown away anyway.
- Gradient accumulation normalises by the answer tokens of the whole optimizer step, so a step's gradient
  does not depend on how its examples are split into micro-batches.
- bf16 autocast (and bf16 base weights) on GPUs that have it; fp32 elsewhere.
- Seeded: data order, image choice, LoRA initialisation and dropout depend only on the spec, so the same
  spec gives the same loss curve, and a resumed run continues exactly where the interrupted one stopped.
- Progress as JSON lines on stdout (``finetune.progress``), checkpoints every N steps and on SIGTERM/SIGINT.
"""

from __future__ import annotations

import math
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from finetune import checkpoint
from finetune.curve import LossCurve, render_png, summary
from finetune.data import IGNORE_INDEX, build_batch, micro_batches, pad_token_id
from finetune.progress import Progress
from finetune.spec import Example, Resolved, TrainSpec, count_parameters, read_examples, resolve

# Module names of vision towers and projectors across HF VLMs; LoRA never goes there.
_NOT_LANGUAGE = ("visual", "vision", "image_newline", "multi_modal_projector", "mm_projector", "merger")


class Cancelled(Exception):
    """Training stopped on a signal after writing a checkpoint."""

    def __init__(self, signum: int, step: int, path: Path | None) -> None:
        super().__init__(f"cancelled by {signal.Signals(signum).name} at step {step}")
        self.signum = signum
        self.step = step
        self.path = path


def language_lora_targets(model: Any) -> str:
    """A peft ``target_modules`` regex matching the language model's linear layers (not the vision tower,
    not the projector, not ``lm_head``)."""
    import re

    import torch

    leaves = set()
    for name, module in model.named_modules():
        leaf = name.split(".")[-1]
        if (
            isinstance(module, torch.nn.Linear)
            and leaf != "lm_head"
            and not any(p in name for p in _NOT_LANGUAGE)
        ):
            leaves.add(leaf)
    if not leaves:
        raise ValueError("the model has no linear layers outside its vision tower to put LoRA on")
    excluded = "|".join(_NOT_LANGUAGE)
    return rf"^(?!.*(?:{excluded})).*\.(?:{'|'.join(sorted(re.escape(x) for x in leaves))})$"


def lr_lambda(hp: Resolved, total_steps: int) -> Callable[[int], float]:
    warmup = max(1, round(hp.warmup_ratio * total_steps)) if hp.warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if hp.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        if hp.schedule == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def total_steps_for(hp: Resolved, n_examples: int) -> int:
    if hp.max_steps is not None:
        return hp.max_steps
    per_step = hp.batch_size * hp.gradient_accumulation
    return max(1, math.ceil(n_examples * hp.epochs / per_step))


class Trainer:
    """One training run of a spec. ``run`` returns the adapter directory or raises ``Cancelled``."""

    def __init__(self, spec: TrainSpec, progress: Progress | None = None) -> None:
        self.spec = spec
        self.progress = progress or Progress()
        self.output_dir = Path(spec.output_dir)
        self.examples: list[Example] = read_examples(spec.examples, "examples")
        self.held_out: list[Example] = read_examples(spec.held_out, "held_out")
        self.n_parameters = count_parameters(spec.base_model)
        self.hp = resolve(spec.hyperparameters, self.n_parameters)
        self.total_steps = total_steps_for(self.hp, len(self.examples))
        self.curve = LossCurve()  # training (and held-out) loss so far; restored on resume
        self._stop_signal: int | None = None
        self._estimate_from = 0
        self.trained_tokens = 0  # tokens (prompt and answer) of the steps run; estimated for resumed steps
        self.on_step: Callable[[int], None] | None = None  # tests: called after each optimizer step

    # -- set-up ---------------------------------------------------------------------------------------
    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """Stop at the next micro-batch boundary, writing a checkpoint (what SIGTERM/SIGINT do)."""
        self._stop_signal = signum

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: self.request_stop(signum))

    def setup(self) -> None:
        """Load the processor and model, add LoRA, build the optimizer and schedule (seeded)."""
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        want = self.hp.precision
        has_bf16 = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        self.bf16 = want == "bf16" or (want == "auto" and has_bf16)
        random.seed(self.hp.seed)
        torch.manual_seed(self.hp.seed)
        self.processor = AutoProcessor.from_pretrained(self.spec.base_model)
        base = AutoModelForImageTextToText.from_pretrained(
            self.spec.base_model, dtype=torch.bfloat16 if self.bf16 else torch.float32
        )
        base.requires_grad_(False)
        config = LoraConfig(
            r=self.hp.lora_rank,
            lora_alpha=self.hp.lora_alpha,
            lora_dropout=self.hp.lora_dropout,
            target_modules=language_lora_targets(base),
            bias="none",
        )
        self.model = get_peft_model(base, config).to(self.device)
        self.model.peft_config["default"].base_model_name_or_path = self.spec.served_base_name
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.trainable = sum(p.numel() for p in params)
        self.optimizer = torch.optim.AdamW(
            params, lr=self.hp.learning_rate, weight_decay=self.hp.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(self.hp, self.total_steps)
        )
        self.pad_id = pad_token_id(self.processor)

    # -- the loop ---------------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> Path:
        if not hasattr(self, "model"):  # ``setup`` may have been called already (to evaluate the base)
            self.setup()
        start, curve = 0, LossCurve()
        ckpt = checkpoint.latest(self.output_dir) if resume else None
        if ckpt is not None:
            start, curve = self._restore(ckpt)
        self._estimate_from = start
        self.curve = curve
        self.progress.start(self._start_info(resume_from=start if ckpt is not None else None))
        batches = micro_batches(len(self.examples), self.hp.batch_size, self.hp.seed)
        for _ in range(start * self.hp.gradient_accumulation):  # index arithmetic only, nothing is encoded
            next(batches)
        started, step = time.monotonic(), start
        self.model.train()
        while step < self.total_steps:
            loss = self._optimizer_step(batches, step)
            step += 1
            curve.train.append((step, loss))
            curve.lr.append((step, float(self.scheduler.get_last_lr()[0])))
            valid = self._periodic_held_out_loss(step)
            if valid is not None:
                curve.held_out.append((step, valid))
            self._report_step(step, start, started, loss, valid)
            if self.on_step is not None:
                self.on_step(step)
            if step % self.hp.checkpoint_every == 0 and step < self.total_steps:
                self._checkpoint(step, curve)
        return self._finish(step, curve)

    def _optimizer_step(self, batches: Any, step: int) -> float:
        import torch

        self._step_rng = checkpoint.rng_state()
        micro = [next(batches) for _ in range(self.hp.gradient_accumulation)]
        built = [build_batch(self.processor, self.examples, m, self.hp.seed, self.pad_id) for m in micro]
        n_tokens = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in built)
        self.trained_tokens += sum(int(b["attention_mask"].sum()) for b in built)
        total = 0.0
        for batch in built:
            self._check_stop(step)
            loss_sum = self._loss_sum(batch)
            (loss_sum / max(1, n_tokens)).backward()
            total += float(loss_sum.detach())
        if self.hp.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(
                [p for p in self.model.parameters() if p.requires_grad], self.hp.max_grad_norm
            )
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total / max(1, n_tokens)

    def _loss_sum(self, batch: dict[str, Any]) -> Any:
        """Summed cross-entropy over the answer tokens; only those positions reach ``lm_head``."""
        import torch
        import torch.nn.functional as F

        batch = {k: v.to(self.device) for k, v in batch.items()}
        labels = batch.pop("labels")
        targets = labels[:, 1:]
        keep = targets != IGNORE_INDEX
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            inner: Any = self.model.get_base_model()
            if hasattr(inner, "model") and hasattr(inner, "lm_head"):
                hidden = inner.model(**batch, use_cache=False).last_hidden_state
                logits = inner.lm_head(hidden[:, :-1][keep])
            else:  # architectures without the (model, lm_head) split: full logits, then select
                logits = self.model(**batch, use_cache=False).logits[:, :-1][keep]
        return F.cross_entropy(logits.float(), targets[keep], reduction="sum")

    def _check_stop(self, step: int) -> None:
        if self._stop_signal is None:
            return
        self.optimizer.zero_grad(set_to_none=True)  # drop the unfinished step; resume redoes it
        path = None
        if step > 0:  # the random state as the unfinished step began, so resuming replays it exactly
            path = self._checkpoint(step, self.curve, rng=self._step_rng)
        raise Cancelled(self._stop_signal, step, path)

    # -- reporting, checkpoints, the end ----------------------------------------------------------------
    def _periodic_held_out_loss(self, step: int) -> float | None:
        """The held-out loss every ``eval_every`` steps and at the last step (when ``eval_every`` is set)."""
        every = self.hp.eval_every
        if not self.held_out or every is None or (step % every and step != self.total_steps):
            return None
        return self.held_out_loss()

    def _tokens_so_far(self, step: int) -> int:
        """Tokens trained on; steps before a resume are counted at this run's mean tokens per step."""
        done = step - self._estimate_from
        if not self._estimate_from or not done:
            return self.trained_tokens
        return self.trained_tokens + round(self.trained_tokens / done * self._estimate_from)

    def _report_step(self, step: int, start: int, started: float, loss: float, valid: float | None) -> None:
        elapsed = time.monotonic() - started
        done = step - start
        samples = done * self.hp.batch_size * self.hp.gradient_accumulation
        extra: dict[str, Any] = {"trained_tokens": self._tokens_so_far(step)}
        if valid is not None:
            extra["valid_loss"] = round(valid, 6)
        self.progress.step(
            step=step,
            total_steps=self.total_steps,
            loss=loss,
            lr=float(self.scheduler.get_last_lr()[0]),
            samples_per_s=samples / elapsed if elapsed > 0 else 0.0,
            eta_s=elapsed / done * (self.total_steps - step) if done else 0.0,
            **extra,
        )

    def _start_info(self, resume_from: int | None) -> dict[str, Any]:
        return {
            "total_steps": self.total_steps,
            "examples": len(self.examples),
            "held_out": len(self.held_out),
            "base_parameters": self.n_parameters,
            "trainable_parameters": self.trainable,
            "device": self.device.type,
            "precision": "bf16" if self.bf16 else "fp32",
            "resumed_from_step": resume_from,
            "hyperparameters": msgspec.structs.asdict(self.hp),
        }

    def _checkpoint(self, step: int, curve: LossCurve, rng: dict[str, Any] | None = None) -> Path:
        path = checkpoint.save(
            self.output_dir,
            checkpoint.TrainerState(
                step=step,
                optimizer=self.optimizer.state_dict(),
                scheduler=self.scheduler.state_dict(),
                rng=rng if rng is not None else checkpoint.rng_state(),
                curve=curve,
            ),
            self._save_adapter,
        )
        self.progress.checkpoint(step=step, path=str(path))
        return path

    def _save_adapter(self, path: Path) -> None:
        # save_embedding_layers=False: "auto" would look the served name up on the Hugging Face Hub.
        self.model.save_pretrained(str(path), save_embedding_layers=False)

    def _restore(self, path: Path) -> tuple[int, LossCurve]:
        from peft.utils import set_peft_model_state_dict
        from safetensors.torch import load_file

        state = checkpoint.load(path)
        weights = load_file(str(path / "adapter_model.safetensors"), device=str(self.device))
        set_peft_model_state_dict(self.model, weights)
        self.optimizer.load_state_dict(state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        checkpoint.restore_rng(state.rng)
        return state.step, state.curve

    def _finish(self, step: int, curve: LossCurve) -> Path:
        if self.held_out and not (curve.held_out and curve.held_out[-1][0] == step):
            curve.held_out.append((step, self.held_out_loss()))
        self._checkpoint(step, curve)
        adapter_dir = self.output_dir / "adapter"
        self._save_adapter(adapter_dir)
        curve.write(self.output_dir / "loss_curve.json")
        render_png(curve, self.output_dir / "loss_curve.png")
        self.progress.done(
            adapter_dir=str(adapter_dir),
            step=step,
            loss_curve=str(self.output_dir / "loss_curve.json"),
            loss_curve_png=str(self.output_dir / "loss_curve.png"),
            trained_tokens=self._tokens_so_far(step),
            **summary(curve),
        )
        return adapter_dir

    def held_out_loss(self) -> float:
        """Mean answer-token loss over the held-out examples (no dropout, no gradients)."""
        import torch

        self.model.eval()
        loss_sum, n_tokens = 0.0, 0
        with torch.no_grad():
            for first in range(0, len(self.held_out), self.hp.batch_size):
                slots = [(0, i) for i in range(first, min(first + self.hp.batch_size, len(self.held_out)))]
                batch = build_batch(self.processor, self.held_out, slots, self.hp.seed, self.pad_id)
                n_tokens += int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
                loss_sum += float(self._loss_sum(batch))
        self.model.train()
        return loss_sum / max(1, n_tokens)
