"""Checking PNG and JPEG images without decoding them, for the common case where nothing must change.

A full decode of a 200 KB PNG costs milliseconds of CPU plus a hop to a worker process; reading its structure
costs a tenth of a millisecond and cannot crash (plain Python over bytes, and zlib's CRC). ``scan_image``
answers for PNG and JPEG files that can go to the engine as they are:

- PNG: the signature, an IHDR chunk first with a valid size, every chunk's length inside the data and its
  CRC right (a truncated or damaged file fails here), at least one IDAT, and an IEND at the end.
- JPEG: SOI, the marker segments up to the first scan with lengths inside the data, a frame header (SOF)
  with the size, an EOI after the scan (a cut-off file has none), and the EXIF orientation from APP1.

Either way the pixel count is checked against the limit from the header, as before. The answer is ``None``
("decode it fully") for any other format, an image that must change (an EXIF orientation other than 1,
a PNG with an eXIf chunk, more pixels than the downscale limit) and anything unusual the scan does not
recognise (so a strange file gets Pillow's own verdict, in a worker process, rather than a guess here).
"""

from __future__ import annotations

import zlib
from typing import Literal

from gateway.media.errors import MediaCorrupt, MediaTooLarge
from gateway.media.images import CheckedImage, ImageLimits

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_ORIENTATION = 0x0112


def scan_image(data: bytes, limits: ImageLimits) -> CheckedImage | None:
    """The image unchanged when its structure is sound and nothing must change; ``None`` to decode it fully.

    Raises ``MediaTooLarge`` (too many pixels) or ``MediaCorrupt`` (truncated or damaged) when the scan
    proves it; never decodes pixels.
    """
    if len(data) > limits.max_bytes:
        return None  # check_image words this refusal
    if data.startswith(PNG_SIGNATURE):
        return _scan_png(data, limits)
    if data.startswith(b"\xff\xd8\xff"):
        return _scan_jpeg(data, limits)
    return None


def _within_limits(width: int, height: int, limits: ImageLimits) -> bool:
    """Raise for too many pixels; False when the image must be downscaled (the full path does that)."""
    if width * height > limits.max_pixels:
        raise MediaTooLarge(
            f"the image is {width}x{height} = {width * height} pixels; the limit is {limits.max_pixels}"
        )
    return not (limits.resize_max_pixels > 0 and width * height > limits.resize_max_pixels)


def _scan_png(data: bytes, limits: ImageLimits) -> CheckedImage | None:
    size = _png_header(data)
    if size is None:
        return None
    width, height = size
    if not _within_limits(width, height, limits):
        return None
    pos, end, seen_idat, seen_palette = 8, len(data), False, False
    view = memoryview(data)  # slices without copying the pixel data
    while True:
        if pos + 12 > end:
            raise MediaCorrupt("the image data is truncated or corrupt (the PNG ends inside a chunk)")
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if length > 0x7FFFFFFF or pos + 12 + length > end:
            raise MediaCorrupt("the image data is truncated or corrupt (a PNG chunk runs past the end)")
        crc = int.from_bytes(data[pos + 8 + length : pos + 12 + length], "big")
        if zlib.crc32(view[pos + 4 : pos + 8 + length]) != crc:
            raise MediaCorrupt(f"the image data is truncated or corrupt (bad CRC in PNG chunk {kind!r})")
        pos += 12 + length
        if kind == b"IEND":
            complete = seen_idat and (seen_palette or data[25] != 3)
            return CheckedImage(data, "image/png", width, height, "PNG", False) if complete else None
        if kind == b"eXIf":
            return None  # may carry an orientation: the full path applies it
        seen_idat = seen_idat or kind == b"IDAT"
        seen_palette = seen_palette or kind == b"PLTE"


def _png_header(data: bytes) -> tuple[int, int] | None:
    """Width and height from a well-formed IHDR right after the signature, else None."""
    if len(data) < 33 or data[12:16] != b"IHDR" or int.from_bytes(data[8:12], "big") != 13:
        return None
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    depth, colour, compression, filtering, interlace = data[24:29]
    if not (0 < width < 2**31 and 0 < height < 2**31) or depth not in _PNG_DEPTHS.get(colour, ()):
        return None
    if compression != 0 or filtering != 0 or interlace not in (0, 1):
        return None
    return width, height


def _scan_jpeg(data: bytes, limits: ImageLimits) -> CheckedImage | None:
    pos, end = 2, len(data)
    size: tuple[int, int] | None = None
    orientation: int | None = None  # from the first EXIF block, as Pillow reads it
    while True:
        if pos + 4 > end:
            raise MediaCorrupt("the image data is truncated or corrupt (the JPEG ends in its header)")
        if data[pos] != 0xFF:
            return None  # not a marker where one must be: let Pillow judge
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > end:
            raise MediaCorrupt("the image data is truncated or corrupt (a JPEG segment runs past the end)")
        segment = data[pos + 4 : pos + 2 + length]
        if marker in _JPEG_SOF:
            if len(segment) < 6:
                return None
            size = int.from_bytes(segment[3:5], "big"), int.from_bytes(segment[1:3], "big")
        elif marker == 0xE1 and orientation is None and segment.startswith(b"Exif\x00\x00"):
            orientation = _exif_orientation(segment[6:])
            if orientation is None:
                return None
        elif marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        elif marker in (0xD8, 0xD9):
            return None
        pos += 2 + length
    if size is None or size[0] < 1 or size[1] < 1:
        return None  # no frame header before the scan, or a height given later (DNL): Pillow decides
    if data.rfind(b"\xff\xd9") < pos:
        raise MediaCorrupt("the image data is truncated or corrupt (the JPEG has no end marker)")
    if not _within_limits(*size, limits) or orientation not in (None, 1):
        return None
    return CheckedImage(data, "image/jpeg", size[0], size[1], "JPEG", False)


def _exif_orientation(tiff: bytes) -> int | None:
    """The orientation tag of IFD0 in a TIFF-structured EXIF block (1 when absent); None when unreadable."""
    order: Literal["little", "big"]
    if tiff[:4] == b"II*\x00":
        order = "little"
    elif tiff[:4] == b"MM\x00*":
        order = "big"
    else:
        return None
    ifd = int.from_bytes(tiff[4:8], order)
    if ifd + 2 > len(tiff):
        return None
    count = int.from_bytes(tiff[ifd : ifd + 2], order)
    for i in range(count):
        entry = tiff[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
        if len(entry) < 12:
            return None
        if int.from_bytes(entry[0:2], order) == _ORIENTATION:
            return int.from_bytes(entry[8:10], order)
    return 1
