"""The loss curve of a training run: stored as JSON, drawn as a PNG with Pillow (no plotting library)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import msgspec


class LossCurve(msgspec.Struct, kw_only=True):
    """Training loss per optimizer step and held-out loss where it was measured, as [step, value] pairs."""

    train: list[tuple[int, float]] = msgspec.field(default_factory=list)
    held_out: list[tuple[int, float]] = msgspec.field(default_factory=list)
    lr: list[tuple[int, float]] = msgspec.field(default_factory=list)

    def write(self, path: Path) -> None:
        path.write_bytes(msgspec.json.format(msgspec.json.encode(self)))

    @classmethod
    def read(cls, path: Path) -> LossCurve:
        return msgspec.json.decode(path.read_bytes(), type=cls)


_W, _H, _PAD_L, _PAD_R, _PAD_T, _PAD_B = 640, 360, 64, 16, 28, 40
_TRAIN_COLOUR, _HELD_COLOUR, _AXIS, _GRID = (31, 119, 180), (214, 39, 40), (40, 40, 40), (225, 225, 225)


def render_png(curve: LossCurve, path: Path, title: str = "loss") -> None:
    """Draw train (blue) and held-out (red) loss against the step into a PNG."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (_W, _H), "white")
    draw = ImageDraw.Draw(img)
    points = [p for p in curve.train + curve.held_out if math.isfinite(p[1])]
    if not points:
        draw.text((_PAD_L, _H // 2), "no steps yet", fill=_AXIS)
        img.save(path, format="PNG")
        return
    x_max = max(1, max(s for s, _ in points))
    y_lo, y_hi = min(v for _, v in points), max(v for _, v in points)
    if y_hi - y_lo < 1e-9:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5

    def xy(step: float, value: float) -> tuple[float, float]:
        x = _PAD_L + (step / x_max) * (_W - _PAD_L - _PAD_R)
        y = _PAD_T + (1 - (value - y_lo) / (y_hi - y_lo)) * (_H - _PAD_T - _PAD_B)
        return x, y

    for i in range(5):
        value = y_lo + (y_hi - y_lo) * i / 4
        _, y = xy(0, value)
        draw.line([(_PAD_L, y), (_W - _PAD_R, y)], fill=_GRID)
        draw.text((4, y - 6), f"{value:.3g}", fill=_AXIS)
    draw.line([(_PAD_L, _PAD_T), (_PAD_L, _H - _PAD_B), (_W - _PAD_R, _H - _PAD_B)], fill=_AXIS)
    draw.text((_PAD_L, _H - _PAD_B + 8), "0", fill=_AXIS)
    draw.text((_W - _PAD_R - 40, _H - _PAD_B + 8), f"{x_max}", fill=_AXIS)
    draw.text((_W // 2 - 20, _H - _PAD_B + 20), "step", fill=_AXIS)
    draw.text((_PAD_L, 8), f"{title}: train (blue), held-out (red)", fill=_AXIS)
    for series, colour in ((curve.train, _TRAIN_COLOUR), (curve.held_out, _HELD_COLOUR)):
        line = [xy(s, v) for s, v in series if math.isfinite(v)]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for x, y in line if len(line) < 40 else line[-1:]:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
    img.save(path, format="PNG")


def summary(curve: LossCurve) -> dict[str, Any]:
    """First and last losses, for the ``done`` event."""
    out: dict[str, Any] = {}
    if curve.train:
        out["first_loss"], out["last_loss"] = curve.train[0][1], curve.train[-1][1]
    if curve.held_out:
        out["held_out_loss"] = curve.held_out[-1][1]
    return out
