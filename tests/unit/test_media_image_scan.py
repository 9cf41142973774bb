"""The structural image check (no pixel decode): what it passes as is, what it refuses, what it hands on.

``scan_image`` answers for sound PNGs and JPEGs that need no change; ``None`` means "decode it fully" (the
worker path of ``check_image``). The pipeline tests at the end prove that sound images skip the worker
and that EXIF-rotated photos still reach the engine rotated.
"""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
from typing import Any

import msgspec
import pytest
from PIL import Image

from gateway.media.address import AddressGuard, AllowList
from gateway.media.errors import MediaCorrupt, MediaTooLarge
from gateway.media.fetch import Fetcher
from gateway.media.image_scan import scan_image
from gateway.media.images import ImageLimits, check_image
from gateway.media.pipeline import MediaLimits, MediaPipeline
from gateway.openai_api.protocol import ChatCompletionRequest, ImageUrlPart
from tests.support.media import data_uri, image_bytes, jpeg_with_orientation, png_claiming_size

LIMITS = ImageLimits()


def chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def noisy_png(size: tuple[int, int] = (120, 90)) -> bytes:
    """A PNG with several IDAT chunks (noise does not compress), so damage can land in the middle."""
    image = Image.frombytes("RGB", size, bytes((i * 7919) % 251 for i in range(size[0] * size[1] * 3)))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_sound_png_and_jpeg_pass_unchanged_with_their_size(fmt: str, mime: str) -> None:
    data = image_bytes(fmt, (64, 48))
    checked = scan_image(data, LIMITS)
    assert checked is not None
    assert (checked.data, checked.mime, checked.width, checked.height, checked.reencoded) == (
        data, mime, 64, 48, False,
    )  # fmt: skip


def test_scan_agrees_with_the_full_check_on_a_photo_sized_png() -> None:
    data = noisy_png()
    scanned, decoded = scan_image(data, LIMITS), check_image(data, LIMITS)
    assert scanned is not None
    assert (scanned.data, scanned.mime, scanned.width, scanned.height) == (
        decoded.data, decoded.mime, decoded.width, decoded.height,
    )  # fmt: skip


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.99])
def test_truncated_png_is_corrupt(keep: float) -> None:
    data = noisy_png()
    with pytest.raises(MediaCorrupt, match="truncated or corrupt"):
        scan_image(data[: int(len(data) * keep)], LIMITS)


def test_png_without_iend_is_corrupt() -> None:
    data = noisy_png()
    assert data.endswith(chunk(b"IEND", b""))
    with pytest.raises(MediaCorrupt, match="truncated or corrupt"):
        scan_image(data[:-12], LIMITS)


def test_a_flipped_byte_inside_the_pixel_data_fails_its_crc() -> None:
    data = bytearray(noisy_png())
    data[len(data) // 2] ^= 0x40
    with pytest.raises(MediaCorrupt, match="bad CRC"):
        scan_image(bytes(data), LIMITS)


@pytest.mark.parametrize(("width", "height"), [(40_000, 40_000), (2**31 - 1, 1)])
def test_pixel_bomb_dimensions_are_refused_from_the_header(width: int, height: int) -> None:
    with pytest.raises(MediaTooLarge, match="pixels"):
        scan_image(png_claiming_size(width, height), LIMITS)


def test_jpeg_bomb_dimensions_are_refused_from_the_frame_header() -> None:
    data = bytearray(image_bytes("JPEG", (64, 48)))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 60_000, 60_000)  # height, width
    with pytest.raises(MediaTooLarge, match="60000x60000"):
        scan_image(bytes(data), LIMITS)


@pytest.mark.parametrize(
    "data",
    [b"GIF89a" + b"\x00" * 64, b"not an image at all", b"\x89PNX\r\n\x1a\n" + b"\x00" * 40, b""],
    ids=["gif", "text", "wrong-png-magic", "empty"],
)
def test_wrong_or_other_magic_goes_to_the_full_check(data: bytes) -> None:
    assert scan_image(data, LIMITS) is None


def test_other_formats_go_to_the_full_check() -> None:
    assert scan_image(image_bytes("WEBP"), LIMITS) is None
    assert scan_image(image_bytes("GIF"), LIMITS) is None


def test_truncated_jpeg_is_corrupt() -> None:
    data = image_bytes("JPEG", (64, 48))
    with pytest.raises(MediaCorrupt, match="no end marker"):
        scan_image(data[:-40], LIMITS)
    with pytest.raises(MediaCorrupt, match="truncated or corrupt"):
        scan_image(data[:30], LIMITS)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_rotated_jpeg_needs_the_full_path(orientation: int) -> None:
    assert scan_image(jpeg_with_orientation((64, 48), orientation), LIMITS) is None


def test_exif_orientation_one_passes() -> None:
    data = jpeg_with_orientation((64, 48), 1)
    checked = scan_image(data, LIMITS)
    assert checked is not None and checked.data == data


def test_png_with_an_exif_chunk_needs_the_full_path() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), "red").save(buf, format="PNG", exif=exif.tobytes())
    assert b"eXIf" in buf.getvalue()
    assert scan_image(buf.getvalue(), LIMITS) is None
    assert (check_image(buf.getvalue(), LIMITS).width, check_image(buf.getvalue(), LIMITS).height) == (48, 64)


def test_images_above_the_downscale_limit_need_the_full_path() -> None:
    data = image_bytes("PNG", (64, 48))
    assert scan_image(data, ImageLimits(resize_max_pixels=1000)) is None
    assert scan_image(data, ImageLimits(resize_max_pixels=64 * 48)) is not None


def test_palette_png_without_a_palette_is_left_to_pillow() -> None:
    data = image_bytes("PNG", (8, 8))
    header = bytearray(data)
    header[25] = 3  # colour type: palette, but the file has no PLTE
    fixed = bytes(header[:29]) + struct.pack(">I", zlib.crc32(bytes(header[12:29]))) + data[33:]
    assert scan_image(fixed, LIMITS) is None


# ---------------------------------------------------------------- through the pipeline


class CountingWorkers:
    """Stands in for the decode workers: runs jobs in process and counts them."""

    def __init__(self) -> None:
        self.jobs = 0

    async def run(self, func: Any, *args: Any) -> Any:
        self.jobs += 1
        return func(*args)

    def close(self) -> None:
        pass


def pipeline() -> tuple[MediaPipeline, CountingWorkers]:
    media = MediaPipeline(MediaLimits(), Fetcher(AddressGuard(AllowList.parse(""))))
    workers = CountingWorkers()
    media.workers = workers  # type: ignore[assignment]
    return media, workers


def request_with(data: bytes, mime: str) -> ChatCompletionRequest:
    body = {"model": "tiny", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_uri(data, mime)}}]}]}  # fmt: skip
    return msgspec.json.decode(msgspec.json.encode(body), type=ChatCompletionRequest)


def sent_image(prepared: Any) -> Image.Image:
    part = prepared.request.messages[0].content[0]
    assert isinstance(part, ImageUrlPart)
    import base64

    return Image.open(io.BytesIO(base64.b64decode(part.image_url.url.split(",", 1)[1])))


def test_sound_images_skip_the_worker_hop_and_keep_their_base64() -> None:
    media, workers = pipeline()
    req = request_with(noisy_png(), "image/jpeg")  # the claimed type is wrong: the sniffed one is sent
    prepared = asyncio.run(media.prepare(req))
    assert workers.jobs == 0
    assert sent_image(prepared).size == (120, 90)
    sent_url = prepared.request.messages[0].content[0].image_url.url
    assert sent_url == "data:image/png;base64," + req.messages[0].content[0].image_url.url.split(",")[1]


def test_base64_with_line_breaks_is_accepted_and_sent_canonical() -> None:
    data = noisy_png()
    req = request_with(data, "image/png")
    text = req.messages[0].content[0].image_url.url.split(",")[1]
    broken = "data:image/png;base64," + "\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    req.messages[0].content[0].image_url.url = broken
    prepared = asyncio.run(pipeline()[0].prepare(req))
    assert prepared.request.messages[0].content[0].image_url.url == "data:image/png;base64," + text


def test_exif_rotated_jpeg_is_still_rotated_through_the_pipeline() -> None:
    media, workers = pipeline()
    prepared = asyncio.run(media.prepare(request_with(jpeg_with_orientation((64, 48), 6), "image/jpeg")))
    assert workers.jobs == 1
    assert sent_image(prepared).size == (48, 64)
