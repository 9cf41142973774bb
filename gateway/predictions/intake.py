"""The media of a prediction request, loaded and checked when the request arrives.

Images come as base64 (raw or a ``data:`` URI) or http(s) URLs; a video as an http(s) URL or a ``data:``
URI. URLs are fetched through the media step's guarded fetcher (the SSRF guard, limits and time-outs of
chat requests). Images are checked like chat images (format, bytes, pixels, a full decode in the decode
workers), videos by their container; every problem is a 400 whose ``param`` names the input
(``images[2]``, ``url``). Checked media then go to the chat service as ``data:`` URIs, so a batch job can
run later from exactly the bytes that were checked.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import uuid
from dataclasses import dataclass
from pathlib import Path

from gateway.media.errors import MediaCorrupt, MediaError, MediaTooLarge, MediaTooMany
from gateway.media.images import check_image
from gateway.media.pipeline import MediaPipeline, decode_data_uri
from gateway.media.video import sniff_container

VIDEO_MIME = {"mov": "video/mp4", "matroska": "video/webm", "avi": "video/x-msvideo"}


@dataclass(frozen=True)
class MediaItem:
    data: bytes
    mime: str

    def data_uri(self) -> str:
        return f"data:{self.mime};base64," + base64.b64encode(self.data).decode()


class MediaIntake:
    """Loads and checks request media with the chat pipeline's fetcher, limits and decode workers."""

    def __init__(self, media: MediaPipeline) -> None:
        self.media = media

    async def images(self, refs: list[str]) -> list[MediaItem]:
        limit = self.media.limits.max_images
        if len(refs) > limit:
            raise MediaTooMany(f"{len(refs)} images given; at most {limit} per request").located("images")
        return list(await asyncio.gather(*(self._image(i, ref) for i, ref in enumerate(refs))))

    async def _image(self, index: int, ref: str) -> MediaItem:
        limits = self.media.limits.image
        try:
            data = await self._load(ref, limits.max_bytes)
            checked = await self.media.workers.run(check_image, data, limits)
        except MediaError as exc:
            raise exc.located(f"images[{index}]") from exc.__cause__
        return MediaItem(checked.data, checked.mime)

    async def video(self, ref: str, param: str = "url") -> MediaItem:
        try:
            data = await self._load(ref, self.media.limits.video.max_bytes, base64_ok=False)
            return MediaItem(data, VIDEO_MIME[sniff_container(data)])
        except MediaError as exc:
            raise exc.located(param) from exc.__cause__

    async def _load(self, ref: str, max_bytes: int, *, base64_ok: bool = True) -> bytes:
        scheme = ref.split(":", 1)[0].lower() if ":" in ref[:8] else ""
        if scheme == "data":
            return decode_data_uri(ref, max_bytes)
        if scheme in ("http", "https"):
            return (await self.media.fetcher.fetch(ref, max_bytes)).data
        forms = "a data: URI, an http(s) URL" + (" or base64" if base64_ok else "")
        if not base64_ok or scheme:
            raise MediaCorrupt(f"not {forms}")
        if len(ref) * 3 // 4 > max_bytes:
            raise MediaTooLarge(f"the data is larger than the limit of {max_bytes} bytes")
        try:
            return base64.b64decode("".join(ref.split()), validate=True)
        except (binascii.Error, ValueError):
            raise MediaCorrupt(f"not {forms} (the base64 is invalid)") from None


class MediaBlobs:
    """The checked media of batch predictions, as files until the prediction has finished.

    One folder per prediction under ``root`` (in the model store, which gateways sharing a database share).
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _folder(self, prediction_id: uuid.UUID) -> Path:
        return self.root / str(prediction_id)

    async def write(self, prediction_id: uuid.UUID, items: list[MediaItem]) -> None:
        await asyncio.to_thread(self._write, self._folder(prediction_id), items)

    @staticmethod
    def _write(folder: Path, items: list[MediaItem]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for index, item in enumerate(items):
            tmp = folder / f"{index}.tmp"
            tmp.write_bytes(item.data)
            tmp.replace(folder / str(index))

    async def read(self, prediction_id: uuid.UUID, mimes: list[str]) -> list[MediaItem]:
        """The items in order; ``FileNotFoundError`` when they are gone."""
        folder = self._folder(prediction_id)
        datas = [await asyncio.to_thread((folder / str(i)).read_bytes) for i in range(len(mimes))]
        return [MediaItem(data, mime) for data, mime in zip(datas, mimes, strict=True)]

    async def delete(self, prediction_id: uuid.UUID) -> None:
        await asyncio.to_thread(_remove_tree, self._folder(prediction_id))


def _remove_tree(folder: Path) -> None:
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        path.unlink(missing_ok=True)
    folder.rmdir()
