"""Content-addressed image files: ``ROOT/images/ab/cd/<sha256>``, written atomically, checked with Pillow.

The same bytes are stored once however many records point at them; the caller (the platform's image
service) deletes a file when the last database row that names its hash is gone. Writes go to a temporary
file in the same folder and are renamed into place, so a reader never sees half a file and two gateways
writing the same image at once both succeed.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

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


class ImageStore:
    """Image files under ``root`` addressed by the SHA-256 of their bytes."""

    def __init__(self, root: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.root = Path(root) / "images"
        self.max_pixels = max_pixels

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> StoredImage:
        """Check and store ``data``; storing bytes that are already there is a no-op."""
        width, height, fmt = inspect_image(data, max_pixels=self.max_pixels)
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_for(digest)
        if not path.exists():
            self._write_atomic(path, data)
        return StoredImage(digest, width, height, fmt, len(data))

    def read(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()

    def delete(self, sha256: str) -> bool:
        """Remove the file (the caller has checked no row references it); True if it was there."""
        try:
            self.path_for(sha256).unlink()
        except FileNotFoundError:
            return False
        return True

    def all_hashes(self) -> set[str]:
        """Every stored hash (for consistency checks: no orphan files)."""
        if not self.root.exists():
            return set()
        return {p.name for p in self.root.glob("??/??/*") if p.is_file() and len(p.name) == 64}

    @staticmethod
    def _write_atomic(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
