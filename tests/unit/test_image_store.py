"""The content-addressed image store: layout, checks, idempotent puts, deletes, no temporary leftovers."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from PIL import Image

from models_store.image_store import ImageRejected, ImageStore


def encoded(fmt: str = "PNG", size: tuple[int, int] = (20, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buf, format=fmt)
    return buf.getvalue()


def test_put_stores_by_hash_with_size_and_format(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    data = encoded("JPEG", (33, 21))
    stored = store.put(data)
    digest = hashlib.sha256(data).hexdigest()
    assert (stored.sha256, stored.width, stored.height, stored.format, stored.size_bytes) == (
        digest, 33, 21, "JPEG", len(data),
    )  # fmt: skip
    assert store.path_for(digest) == tmp_path / "images" / digest[:2] / digest[2:4] / digest
    assert store.read(digest) == data
    assert store.put(data) == stored  # the same bytes again: same file
    assert store.all_hashes() == {digest}
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_delete(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    digest = store.put(encoded()).sha256
    assert store.delete(digest) and not store.exists(digest) and not store.delete(digest)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"hello, not an image", "not a readable image"),
        (encoded()[:40], "not a readable image"),
        (encoded("PNG", (300, 300)), "limit"),
    ],
)
def test_rejects_what_is_not_an_acceptable_image(tmp_path: Path, data: bytes, words: str) -> None:
    store = ImageStore(tmp_path, max_pixels=200 * 200)
    with pytest.raises(ImageRejected, match=words):
        store.put(data)
    assert store.all_hashes() == set()


def test_paths_only_for_hex_digests(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ImageStore(tmp_path).path_for("../../etc/passwd")
