"""Checkpoints: the adapter, optimizer, scheduler, random-number states, step and loss curve.

A checkpoint is a directory ``checkpoints/step-NNNNNNN`` written under a temporary name and renamed into
place, so a kill mid-write never leaves a half checkpoint that ``--resume`` would pick. The two newest are
kept. The adapter inside is a complete vLLM-loadable adapter, so an interrupted job still has something to
serve or evaluate.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.curve import LossCurve

KEEP = 2
STATE_FILE = "trainer_state.pt"


@dataclass
class TrainerState:
    step: int
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]
    curve: LossCurve


def checkpoints_dir(output_dir: Path) -> Path:
    return output_dir / "checkpoints"


def latest(output_dir: Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    root = checkpoints_dir(output_dir)
    if not root.is_dir():
        return None
    done = sorted(p for p in root.glob("step-*") if (p / STATE_FILE).is_file())
    return done[-1] if done else None


def rng_state() -> dict[str, Any]:
    import torch

    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(output_dir: Path, state: TrainerState, save_adapter: Any) -> Path:
    """Write a checkpoint at ``state.step``; ``save_adapter(dir)`` writes the adapter files."""
    import torch

    root = checkpoints_dir(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{state.step:07d}"
    tmp = root / f".tmp-step-{state.step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_adapter(tmp)
        torch.save(
            {
                "step": state.step,
                "optimizer": state.optimizer,
                "scheduler": state.scheduler,
                "rng": state.rng,
                "curve": {"train": state.curve.train, "held_out": state.curve.held_out, "lr": state.curve.lr},
            },
            tmp / STATE_FILE,
        )
    except BaseException:  # a full disk, a kill: no half checkpoint is left to fill the disk further
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(p for p in root.glob("step-*") if p != final)[: -(KEEP - 1) or None]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load(path: Path) -> TrainerState:
    import torch

    raw = torch.load(path / STATE_FILE, weights_only=False)
    curve = LossCurve(
        train=[tuple(p) for p in raw["curve"]["train"]],  # type: ignore[misc]
        held_out=[tuple(p) for p in raw["curve"]["held_out"]],  # type: ignore[misc]
        lr=[tuple(p) for p in raw["curve"]["lr"]],  # type: ignore[misc]
    )
    return TrainerState(raw["step"], raw["optimizer"], raw["scheduler"], raw["rng"], curve)
