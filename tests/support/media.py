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


def image_bytes(fmt: str, size: tuple[int, int] = (64, 48), colour: str = "red", **save: object) -> bytes:
    """An image of one colour in ``fmt`` (PNG, JPEG, WEBP, GIF, BMP, TIFF)."""
    buf = io.BytesIO()
    mode = "RGBA" if save.pop("alpha", False) else "RGB"
    Image.new(mode, size, RGB[colour]).save(buf, format=fmt, **save)
    return buf.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def jpeg_with_orientation(size: tuple[int, int], orientation: int) -> bytes:
    """A JPEG whose EXIF says to rotate it (6: a quarter turn clockwise, so width and height swap)."""
    image = Image.new("RGB", size, RGB["blue"])
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif.tobytes())
    return buf.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression-bomb shape)."""
    import struct
    import zlib

    data = bytearray(png_bytes("red", 1))
    ihdr = 8 + 8  # signature, then length + type of the IHDR chunk
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def frame_level(index: int) -> int:
    """The grey level of frame ``index`` in ``video_bytes`` (distinct for 0..49, spaced for lossy codecs)."""
    return (index * 5) % 250


def video_bytes(
    seconds: float = 2.0,
    fps: int = 10,
    size: tuple[int, int] = (64, 48),
    *,
    container: str = "mp4",
    codec: str = "libx264",
    gop: int | None = None,
    rotation: int = 0,
) -> bytes:
    """A video generated with PyAV: frame i is a solid grey of level ``frame_level(i)``."""
    import av
    import numpy as np

    width, height = size
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"  # type: ignore[union-attr]
        if gop is not None:
            stream.gop_size = gop  # type: ignore[union-attr]
        if rotation:
            stream.set_display_rotation(rotation)  # type: ignore[union-attr]
        for i in range(round(seconds * fps)):
            frame = np.full((height, width, 3), frame_level(i), dtype=np.uint8)
            frame[:8, :8] = (255, 0, 0)  # a red mark in the top-left corner shows the orientation
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):  # type: ignore[union-attr]
                out.mux(packet)
        for packet in stream.encode(None):  # type: ignore[union-attr]
            out.mux(packet)
    return buf.getvalue()
