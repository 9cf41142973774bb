"""Images generated in code for tests (no files, no downloads)."""

from __future__ import annotations

import base64
import io

from PIL import Image

RGB = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (30, 60, 220), "yellow": (230, 220, 40)}


def png_bytes(colour: str, size: int = 56) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), RGB[colour]).save(buf, format="PNG")
    return buf.getvalue()


def png_data_uri(colour: str, size: int = 56) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(colour, size)).decode()
