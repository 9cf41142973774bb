"""Content-addressed image files: key ``images/ab/cd/<sha256>`` in the model store, checked with Pillow.

The same bytes are stored once however many records point at them; the caller (the platform's image
service) deletes a file when the last database row that names its hash is gone. The store writes
atomically (``models_store.store``), so a reader never sees half a file and two gateways writing the same
image at once both succeed; with an object store every gateway and training worker sees the same images.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from models_store.store import LocalFolderStore, Store

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"})
DEFAULT_MAX_PIXELS = 50_000_000


class ImageRejected(ValueError):
    """The bytes are not an image this store accepts; the message says why."""


@dataclass(frozen=True)
class StoredImage:
    sha256: str
    width: int
    height: int
    format: str
    size_bytes: int


def inspect_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int, str]:
    """Width, height and format of encoded image bytes; raises ``ImageRejected`` for anything else."""
    if not data:
        raise ImageRejected("the image is empty")
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height, fmt = img.width, img.height, (img.format or "").upper()
            if width * height > max_pixels:
                raise ImageRejected(f"the image has {width}x{height} pixels; the limit is {max_pixels}")
            img.verify()
    except ImageRejected:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageRejected(f"the data is not a readable image ({exc})") from exc
    if fmt not in ALLOWED_FORMATS:
        raise ImageRejected(f"image format {fmt or 'unknown'} is not accepted; use JPEG, PNG or WEBP")
    return width, height, fmt


def image_key(sha256: str) -> str:
    """The store key of an image's bytes."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return f"images/{sha256[:2]}/{sha256[2:4]}/{sha256}"


class ImageStore:
    """Image files in a ``Store`` (a local folder given as a path, or any store) addressed by SHA-256."""

    def __init__(self, store: Store | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.store = store if isinstance(store, Store) else LocalFolderStore(Path(store))
        self.max_pixels = max_pixels

    def path_for(self, sha256: str) -> Path:
        """Where the image is (or would be cached) on this machine; see ``materialise``."""
        return self.store.local_path(image_key(sha256))

    def materialise(self, sha256: str) -> Path:
        """A local file with the image's bytes, for readers that need a path (a trainer, an engine)."""
        return self.store.materialise(image_key(sha256))

    def put(self, data: bytes) -> StoredImage:
        """Check and store ``data``; storing bytes that are already there is a no-op."""
        width, height, fmt = inspect_image(data, max_pixels=self.max_pixels)
        digest = hashlib.sha256(data).hexdigest()
        if not self.store.exists(image_key(digest)):
            self.store.write(image_key(digest), data)
        return StoredImage(digest, width, height, fmt, len(data))

    def read(self, sha256: str) -> bytes:
        return self.store.read(image_key(sha256))

    def exists(self, sha256: str) -> bool:
        return self.store.exists(image_key(sha256))

    def delete(self, sha256: str) -> bool:
        """Remove the file (the caller has checked no row references it); True if it was there."""
        return self.store.delete(image_key(sha256))

    def all_hashes(self) -> set[str]:
        """Every stored hash (for consistency checks: no orphan files)."""
        names = (key.rsplit("/", 1)[-1] for key in self.store.keys("images"))
        return {name for name in names if len(name) == 64}
