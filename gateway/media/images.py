"""Check and normalise one image: sniff the real format, bound bytes and pixels, decode, orient, downscale.

The claimed type (a data URI's media type, a server's Content-Type) is ignored; Pillow identifies the bytes,
limited to formats it reads safely. The pixel limit is checked from the header before any pixel is decoded,
so a decompression bomb costs nothing. Every image is fully decoded once (a truncated or corrupt file is a
400 here, not a 500 in the engine). The original bytes go to the engine unchanged when nothing had to
change; otherwise the image is re-encoded once (PNG for lossless sources and alpha, JPEG for photos).
JPEGs that are downscaled are decoded at reduced size (``draft``), which is much faster than a full decode.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from gateway.media.errors import MediaCorrupt, MediaTooLarge, MediaUnsupported

# Formats Pillow decodes that users send; TIFF for scans. Pillow's JPEG opener also returns MPO, what many
# phone cameras write (a JPEG with extra pictures appended).
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
PASS_THROUGH = {"PNG": "image/png", "JPEG": "image/jpeg", "MPO": "image/jpeg", "WEBP": "image/webp"}
LOSSLESS = frozenset({"PNG", "GIF", "BMP", "TIFF"})
_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000  # refuse above (decompression bombs)
    resize_max_pixels: int = 0  # downscale above, keeping the aspect ratio (0: never)


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    mime: str
    width: int
    height: int
    source_format: str
    reencoded: bool


def check_image(data: bytes, limits: ImageLimits) -> CheckedImage:
    """Validate ``data`` as an image within ``limits``; the bytes to hand to the engine and their type."""
    if len(data) > limits.max_bytes:
        raise MediaTooLarge(f"the image has {len(data)} bytes; the limit is {limits.max_bytes}")
    image = open_image(data, limits)
    fmt = image.format or ""
    target = _target_size(image.size, limits.resize_max_pixels)
    if target is not None and fmt in ("JPEG", "MPO"):
        image.draft("RGB", target)  # decode at 1/2, 1/4 or 1/8 scale when that is still >= target
    _decode(image)
    changed = fmt not in PASS_THROUGH or target is not None
    if image.getexif().get(_ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)
        changed = True
    if target is not None:
        image = image.resize(_oriented(target, image.size), Image.Resampling.LANCZOS)
    if not changed:
        return CheckedImage(data, PASS_THROUGH[fmt], image.width, image.height, fmt, False)
    out, mime = encode_image(image, lossless=fmt in LOSSLESS)
    return CheckedImage(out, mime, image.width, image.height, fmt, True)


def open_image(data: bytes, limits: ImageLimits) -> Image.Image:
    """Identify the format and size from the header only; refuse unknown formats and too many pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise MediaTooLarge(f"the image has too many pixels ({exc})") from exc
    except UnidentifiedImageError as exc:
        names = ", ".join(ACCEPTED_FORMATS)
        raise MediaUnsupported(f"the data is not an image in a supported format ({names})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaCorrupt(f"the image header is corrupt ({exc})") from exc
    width, height = image.size
    if width * height > limits.max_pixels:
        raise MediaTooLarge(
            f"the image is {width}x{height} = {width * height} pixels; the limit is {limits.max_pixels}"
        )
    if width < 1 or height < 1:
        raise MediaCorrupt("the image has no pixels")
    return image


def _decode(image: Image.Image) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
    except Image.DecompressionBombError as exc:
        raise MediaTooLarge(f"the image has too many pixels ({exc})") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise MediaCorrupt(f"the image data is truncated or corrupt ({exc})") from exc


def _target_size(size: tuple[int, int], max_pixels: int) -> tuple[int, int] | None:
    """The size that fits ``max_pixels`` with the same aspect ratio, or None when no downscale is needed."""
    width, height = size
    if max_pixels <= 0 or width * height <= max_pixels:
        return None
    scale = math.sqrt(max_pixels / (width * height))
    return max(1, int(width * scale)), max(1, int(height * scale))


def _oriented(target: tuple[int, int], actual: tuple[int, int]) -> tuple[int, int]:
    """``target`` swapped when the image was rotated by a quarter turn after the target was computed."""
    if (target[0] >= target[1]) == (actual[0] >= actual[1]):
        return target
    return target[1], target[0]


def encode_image(image: Image.Image, *, lossless: bool, quality: int = 92) -> tuple[bytes, str]:
    """PNG when the source was lossless or has transparency, else JPEG."""
    buf = io.BytesIO()
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if lossless or has_alpha:
        if image.mode not in ("RGB", "RGBA", "L", "LA"):
            image = image.convert("RGBA" if has_alpha else "RGB")
        image.save(buf, format="PNG", compress_level=1)
        return buf.getvalue(), "image/png"
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue(), "image/jpeg"
