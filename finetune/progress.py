"""Progress reporting of a training run: JSON lines on stdout for machines, one human line on stderr.

Every event is one JSON object on its own line with an ``event`` field: ``start``, ``step`` (step,
total_steps, loss, lr, samples_per_s, eta_s), ``checkpoint`` (step, path), ``done`` (adapter_dir and the
loss-curve files), ``cancelled`` (step, checkpoint) or ``error`` (message). The gateway's job runner
(``gateway.training.runner``) parses these lines into job events. Step events are thinned to about
``max_step_events`` per run (plus the first and the last step); the loss curve keeps every step.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

import msgspec

_encode = msgspec.json.Encoder().encode


class Progress:
    def __init__(
        self,
        out: IO[str] | None = None,
        err: IO[str] | None = None,
        *,
        max_step_events: int = 200,
        human: bool = True,
    ) -> None:
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.max_step_events = max_step_events
        self.human = human
        self.events: list[dict[str, Any]] = []  # everything emitted, for in-process callers and tests

    def emit(self, event: str, **fields: Any) -> None:
        record = {"event": event, "time": round(time.time(), 3), **fields}
        self.events.append(record)
        self.out.write(_encode(record).decode() + "\n")
        self.out.flush()

    def say(self, text: str) -> None:
        if self.human:
            self.err.write(f"[finetune {time.strftime('%H:%M:%S')}] {text}\n")
            self.err.flush()

    def start(self, info: dict[str, Any]) -> None:
        self.emit("start", **info)
        resumed = info.get("resumed_from_step")
        self.say(
            f"training {info['trainable_parameters']:,} LoRA parameters on {info['examples']} examples, "
            f"{info['total_steps']} steps on {info['device']} ({info['precision']})"
            + (f", resuming at step {resumed}" if resumed is not None else "")
        )

    def step(self, *, step: int, total_steps: int, loss: float, lr: float, samples_per_s: float,
             eta_s: float, **extra: Any) -> None:  # fmt: skip
        """A step; ``extra`` fields (``valid_loss``, ``trained_tokens``) go into the event as they are. A
        step with a ``valid_loss`` is never thinned out."""
        every = max(1, total_steps // self.max_step_events)
        if step % every and step not in (1, total_steps) and "valid_loss" not in extra:
            return
        self.emit("step", step=step, total_steps=total_steps, loss=round(loss, 6), lr=lr,
                  samples_per_s=round(samples_per_s, 3), eta_s=round(eta_s, 1), **extra)  # fmt: skip
        self.say(
            f"step {step}/{total_steps}  loss {loss:.4f}  lr {lr:.2e}  "
            f"{samples_per_s:.1f} samples/s  ETA {eta_s:.0f} s"
        )

    def checkpoint(self, *, step: int, path: str) -> None:
        self.emit("checkpoint", step=step, path=path)

    def done(self, *, adapter_dir: str, **fields: Any) -> None:
        self.emit("done", adapter_dir=adapter_dir, **fields)
        self.say(f"done: adapter in {adapter_dir}")

    def cancelled(self, *, step: int, checkpoint: str | None) -> None:
        self.emit("cancelled", step=step, checkpoint=checkpoint)
        self.say(f"cancelled at step {step}" + (f"; checkpoint {checkpoint}" if checkpoint else ""))

    def error(self, message: str, **fields: Any) -> None:
        self.emit("error", message=message, **fields)
        self.say(f"error: {message}")
