"""Image checks: real format sniffing, bounds before decoding, corrupt data, EXIF orientation, downscaling."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from gateway.media.errors import MediaCorrupt, MediaTooLarge, MediaUnsupported
from gateway.media.images import ImageLimits, check_image
from tests.support.media import image_bytes, jpeg_with_orientation, png_claiming_size

LIMITS = ImageLimits()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize(
    ("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_common_formats_pass_through_unchanged(fmt: str, mime: str) -> None:
    data = image_bytes(fmt)
    checked = check_image(data, LIMITS)
    assert (checked.data, checked.mime, checked.reencoded) == (data, mime, False)
    assert (checked.width, checked.height) == (64, 48)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_formats_are_reencoded_as_png(fmt: str) -> None:
    checked = check_image(image_bytes(fmt), LIMITS)
    assert checked.mime == "image/png" and checked.reencoded and checked.source_format == fmt
    assert decode(checked.data).size == (64, 48)


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (20, 10), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    image = decode(check_image(buf.getvalue(), LIMITS).data).convert("RGB")
    red, _, blue = image.getpixel((5, 5))  # type: ignore[misc]
    assert red > 200 and blue < 50


def test_exif_orientation_is_applied() -> None:
    checked = check_image(jpeg_with_orientation((80, 40), orientation=6), LIMITS)
    assert (checked.width, checked.height) == (40, 80)
    out = decode(checked.data)
    assert out.size == (40, 80) and out.getexif().get(0x0112, 1) == 1


def test_downscale_keeps_the_aspect_ratio() -> None:
    checked = check_image(image_bytes("JPEG", size=(800, 400)), ImageLimits(resize_max_pixels=20_000))
    assert checked.reencoded and checked.mime == "image/jpeg"
    assert checked.width * checked.height <= 20_000
    assert abs(checked.width / checked.height - 2.0) < 0.05
    assert decode(checked.data).size == (checked.width, checked.height)


def test_downscale_after_rotation_swaps_the_target() -> None:
    checked = check_image(jpeg_with_orientation((400, 200), 6), ImageLimits(resize_max_pixels=20_000))
    assert checked.height > checked.width and checked.width * checked.height <= 20_000


def test_small_images_are_not_resized() -> None:
    data = image_bytes("PNG")
    assert check_image(data, ImageLimits(resize_max_pixels=10_000)).data == data


def test_transparent_png_stays_png_when_reencoded() -> None:
    checked = check_image(
        image_bytes("PNG", size=(200, 100), alpha=True), ImageLimits(resize_max_pixels=5000)
    )
    assert checked.mime == "image/png" and decode(checked.data).mode == "RGBA"


@pytest.mark.parametrize(("width", "height"), [(10_000, 6_000), (40_000, 40_000)])
def test_pixel_bomb_is_refused_from_the_header(width: int, height: int) -> None:
    with pytest.raises(MediaTooLarge, match="pixels"):
        check_image(png_claiming_size(width, height), LIMITS)


def test_byte_limit() -> None:
    with pytest.raises(MediaTooLarge, match="limit is 100"):
        check_image(image_bytes("PNG"), ImageLimits(max_bytes=100))


def test_truncated_image_is_corrupt() -> None:
    data = image_bytes("JPEG", size=(256, 256), quality=95)
    with pytest.raises(MediaCorrupt, match="truncated or corrupt"):
        check_image(data[: len(data) // 2], LIMITS)


@pytest.mark.parametrize("data", [b"hello, not an image", b"%PDF-1.4\n...", b"\x00" * 64])
def test_non_images_are_unsupported(data: bytes) -> None:
    with pytest.raises(MediaUnsupported, match="not an image in a supported format"):
        check_image(data, LIMITS)
