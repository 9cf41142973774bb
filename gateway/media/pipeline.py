"""The media step of a chat request: every image and video part becomes checked media the engine can read.

``MediaPipeline.prepare`` walks the user messages, loads each part's bytes (``data:`` URI, http(s) through
the guarded fetcher, or ``image://ID`` from the workspace's stored images), checks and normalises images,
samples videos, and returns a copy of the request whose media URLs point only at what the gateway produced
(hand-off files or data URIs). Videos in ``frames`` mode become a text line and one image per frame with
its timestamp; in ``native`` mode a small MP4 of the sampled frames. Parts are processed concurrently.
PNGs and JPEGs that need no change are checked in place from their structure (``image_scan``: no pixel
decode); every other decode runs in worker processes (``workers``), at most ``media_decode_concurrency`` at
a time, so the event loop keeps serving and a decoder crash costs a worker, not the gateway. Any failure
is a ``MediaError`` naming the part (``messages[i].content[j]...``).
"""

from __future__ import annotations

import asyncio
import binascii
import dataclasses
import re
import urllib.parse
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import msgspec
import pybase64

from gateway.media.address import AddressGuard, AllowList, HostResolver
from gateway.media.errors import (
    MediaCorrupt,
    MediaError,
    MediaNotFound,
    MediaTooLarge,
    MediaTooMany,
    MediaUnsupported,
)
from gateway.media.fetch import Fetcher, FetchLimits
from gateway.media.handoff import Handoff, HandoffBatch
from gateway.media.image_scan import scan_image
from gateway.media.images import ImageLimits, check_image, encode_image
from gateway.media.video import Sampling, VideoLimits, encode_clip, sample_video
from gateway.media.workers import DecodeWorkers
from gateway.openai_api.protocol import (
    ChatCompletionRequest,
    ContentPart,
    ImageUrl,
    ImageUrlPart,
    Message,
    TextPart,
    UserMessage,
    VideoOptions,
    VideoUrl,
    VideoUrlPart,
)
from gateway.settings import Settings

STORED_IMAGE_SCHEME = "image://"
LOW_DETAIL_PIXELS = 512 * 512
_STORED_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Plain base64 (no ``data:`` prefix), as Oxen's API takes it in ``image_url.url``: the base64 alphabet only
# (no ``:``, so never a URL), long enough to be media rather than a mistyped URL.
_PLAIN_BASE64 = re.compile(r"^[A-Za-z0-9+/\s]{16,}={0,2}\s*$")
T = TypeVar("T")


class StoredImages(Protocol):
    """Images already stored in a workspace (the platform API's image store implements this).

    ``read`` returns the image's bytes, or raises ``LookupError`` (e.g. ``KeyError``) when the workspace has
    no image with that id; it must never return another workspace's image.
    """

    async def read(self, image_id: str, workspace: str | None) -> bytes: ...


@dataclass(frozen=True)
class MediaLimits:
    max_images: int = 10
    max_videos: int = 2
    image: ImageLimits = field(default_factory=ImageLimits)
    video: VideoLimits = field(default_factory=VideoLimits)
    default_frames: int = 8
    default_mode: str = "frames"
    frame_pixels: int = 640 * 640
    decode_concurrency: int = 2
    decode_isolation: str = "process"
    decode_memory_bytes: int = 4 * 1024**3
    decode_timeout_s: float = 60.0


@dataclass
class PreparedMedia:
    """The request to send the engine, and the hand-off files to delete once the engine has answered."""

    request: ChatCompletionRequest
    batch: HandoffBatch | None = None

    def release(self) -> None:
        if self.batch is not None:
            self.batch.release()


@dataclass(frozen=True)
class _Part:
    message: int
    index: int
    part: ImageUrlPart | VideoUrlPart

    @property
    def param(self) -> str:
        kind = "image_url" if isinstance(self.part, ImageUrlPart) else "video_url"
        return f"messages[{self.message}].content[{self.index}].{kind}.url"


class MediaPipeline:
    """Fetches, checks and converts the media of chat requests (one per gateway, shared by requests)."""

    def __init__(
        self,
        limits: MediaLimits,
        fetcher: Fetcher,
        handoff: Handoff | None = None,
        stored: StoredImages | None = None,
    ) -> None:
        self.limits = limits
        self.fetcher = fetcher
        self.handoff = handoff or Handoff(None)
        self.stored = stored
        self.workers = DecodeWorkers(
            limits.decode_concurrency,
            isolation=limits.decode_isolation,
            memory_limit_bytes=limits.decode_memory_bytes,
            timeout_s=limits.decode_timeout_s,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        handoff_folder: bool = False,
        fetcher: Fetcher | None = None,
        stored: StoredImages | None = None,
    ) -> MediaPipeline:
        """A pipeline configured by ``settings``; ``handoff_folder`` when the engine can read local files.
        ``fetcher`` is shared with whoever else fetches user URLs (image uploads); by default its own."""
        folder = settings.media_handoff_dir if handoff_folder else None
        return cls(
            limits_from_settings(settings),
            fetcher or fetcher_from_settings(settings),
            Handoff(folder),
            stored,
        )

    async def close(self) -> None:
        await self.fetcher.close()
        self.workers.close()

    async def prepare(self, req: ChatCompletionRequest, workspace: str | None = None) -> PreparedMedia:
        """``req`` with every media part replaced by checked media; raises ``MediaError`` naming the part."""
        parts = list(_media_parts(req.messages))
        if not parts:
            return PreparedMedia(
                req if req.video_options is None else msgspec.structs.replace(req, video_options=None)
            )
        self._check_counts(parts)
        batch = self.handoff.begin()
        try:
            replacements = await _run_all(
                [self._located(p, self._convert(p, req.video_options, workspace, batch)) for p in parts]
            )
        except BaseException:
            batch.release()
            raise
        by_place = {(p.message, p.index): r for p, r in zip(parts, replacements, strict=True)}
        messages = [_replace_parts(i, m, by_place) for i, m in enumerate(req.messages)]
        return PreparedMedia(msgspec.structs.replace(req, messages=messages, video_options=None), batch)

    def _check_counts(self, parts: list[_Part]) -> None:
        for kind, limit in ((ImageUrlPart, self.limits.max_images), (VideoUrlPart, self.limits.max_videos)):
            of_kind = [p for p in parts if isinstance(p.part, kind)]
            if len(of_kind) > limit:
                noun = "images" if kind is ImageUrlPart else "videos"
                raise MediaTooMany(
                    f"the request has {len(of_kind)} {noun}; at most {limit} are allowed per request"
                ).located(of_kind[limit].param)

    async def _located(self, part: _Part, work: Awaitable[T]) -> T:
        try:
            return await work
        except MediaError as exc:
            raise exc.located(part.param) from exc.__cause__

    async def _convert(
        self, part: _Part, defaults: VideoOptions | None, workspace: str | None, batch: HandoffBatch
    ) -> list[ContentPart]:
        if isinstance(part.part, ImageUrlPart):
            return [await self._image(part.part, workspace, batch)]
        return await self._video(part.part.video_url, defaults, batch)

    async def _image(self, part: ImageUrlPart, workspace: str | None, batch: HandoffBatch) -> ImageUrlPart:
        data = await self._load(part.image_url.url, self.limits.image.max_bytes, workspace, stored_ok=True)
        limits = self._image_limits(part.image_url.detail)
        # A sound PNG or JPEG that needs no change is checked here from its structure (no decode, nothing
        # that can crash); everything else is decoded in a worker.
        checked = scan_image(data, limits)
        if checked is None:
            checked = await self.workers.run(check_image, data, limits)
        same = None if checked.reencoded else _same_data_uri(part.image_url.url, checked.data, checked.mime)
        url = batch.put(checked.data, checked.mime, same)
        return ImageUrlPart(ImageUrl(url=url, detail=part.image_url.detail))

    def _image_limits(self, detail: str) -> ImageLimits:
        """``detail: low`` (OpenAI: a 512x512 view) caps the image at 512x512 pixels' worth."""
        limits = self.limits.image
        if detail != "low":
            return limits
        current = limits.resize_max_pixels
        return dataclasses.replace(
            limits, resize_max_pixels=min(current or LOW_DETAIL_PIXELS, LOW_DETAIL_PIXELS)
        )

    async def _video(
        self, video: VideoUrl, defaults: VideoOptions | None, batch: HandoffBatch
    ) -> list[ContentPart]:
        data = await self._load(video.url, self.limits.video.max_bytes, None, stored_ok=False)
        sampling, mode = self._sampling(video, defaults)
        job = VideoJob(data, sampling, self.limits.video, self.limits.frame_pixels, mode)
        result = await self.workers.run(run_video_job, job)
        if result.clip is not None:
            return [VideoUrlPart(VideoUrl(url=batch.put(result.clip, "video/mp4")))]
        return _frames_as_parts(result, batch)

    def _sampling(self, video: VideoUrl, defaults: VideoOptions | None) -> tuple[Sampling, str]:
        """Options on the part win over the request's ``video_options``, which win over the settings."""
        own_count = video.num_frames is not None or video.fps is not None
        base = defaults or VideoOptions()
        num_frames = video.num_frames if own_count else base.num_frames
        fps = video.fps if own_count else base.fps
        if num_frames is None and fps is None:
            num_frames = self.limits.default_frames
        start = video.start if video.start is not None else base.start
        end = video.end if video.end is not None else base.end
        if start is not None and end is not None and start >= end:
            raise MediaUnsupported("`start` must be before `end`")
        mode = video.mode or base.mode or self.limits.default_mode
        return Sampling(num_frames=num_frames, fps=fps, start=start, end=end), mode

    async def _load(self, url: str, max_bytes: int, workspace: str | None, *, stored_ok: bool) -> bytes:
        """The bytes a media URL names: data URI, http(s) (guarded fetch) or a stored image."""
        colon = url.find(":", 0, 16)  # never split the whole URL: a data: URI may be megabytes
        scheme = url[:colon].lower() if colon > 0 else ""
        if scheme == "data":
            return decode_data_uri(url, max_bytes)
        if scheme in ("http", "https"):
            return (await self.fetcher.fetch(url, max_bytes)).data
        if stored_ok and url.startswith(STORED_IMAGE_SCHEME):
            return await self._stored(url[len(STORED_IMAGE_SCHEME) :], workspace)
        if not scheme and _PLAIN_BASE64.match(url):
            return decode_data_uri("data:;base64," + url, max_bytes)
        forms = "data:, http:, https:, plain base64" + (" or image://<image id>" if stored_ok else "")
        shown = f"`{scheme}:`" if scheme else "no scheme"
        raise MediaUnsupported(f"URL with {shown} is not accepted; use {forms}")

    async def _stored(self, image_id: str, workspace: str | None) -> bytes:
        if not _STORED_ID.match(image_id):
            raise MediaUnsupported(f"`{image_id[:80]}` is not a stored image id")
        if self.stored is None:
            raise MediaNotFound("this gateway has no image store; send the image as a data: URI or URL")
        try:
            return await self.stored.read(image_id, workspace)
        except LookupError as exc:
            raise MediaNotFound(f"no stored image `{image_id}` in this workspace") from exc


def fetcher_from_settings(settings: Settings, resolver: HostResolver | None = None) -> Fetcher:
    """The guarded fetcher for user-given URLs (SSRF guard with the settings' allow-list, time and redirect
    limits); ``resolver`` replaces DNS in tests."""
    guard = AddressGuard(AllowList.parse(settings.media_fetch_allow), resolver)
    fetch_limits = FetchLimits(
        connect_timeout_s=settings.media_fetch_connect_timeout_s,
        total_timeout_s=settings.media_fetch_timeout_s,
        max_redirects=settings.media_fetch_max_redirects,
    )
    return Fetcher(guard, fetch_limits)


def limits_from_settings(settings: Settings) -> MediaLimits:
    return MediaLimits(
        max_images=settings.media_max_images,
        max_videos=settings.media_max_videos,
        image=ImageLimits(
            max_bytes=settings.media_image_max_bytes,
            max_pixels=settings.media_image_max_pixels,
            resize_max_pixels=settings.media_image_resize_pixels,
        ),
        video=VideoLimits(
            max_bytes=settings.media_video_max_bytes,
            max_duration_s=settings.media_video_max_duration_s,
            max_frames=settings.media_video_max_frames,
            max_pixels=settings.media_video_max_pixels,
        ),
        default_frames=settings.media_video_frames,
        default_mode=settings.media_video_mode,
        frame_pixels=settings.media_video_frame_pixels,
        decode_concurrency=settings.media_decode_concurrency,
        decode_isolation=settings.media_decode_isolation,
        decode_memory_bytes=settings.media_decode_memory_bytes,
        decode_timeout_s=settings.media_decode_timeout_s,
    )


def _same_data_uri(url: str, data: bytes, mime: str) -> str | None:
    """The data: URI to send for unchanged ``data`` that came as ``url``, without encoding it again.

    ``data`` is what ``decode_data_uri`` made of ``url`` (strictly decoded); when the lengths agree there was
    no whitespace to strip and the text is ``data`` in base64 (the last group's unused bits aside, which
    every decoder ignores). The URL itself when it already names the sniffed type, else the same text with
    the right type; None for another scheme or form."""
    comma = url.find(",", 0, 256)
    if comma < 0 or url[:5].lower() != "data:" or not url[:comma].lower().endswith(";base64"):
        return None
    if len(url) - comma - 1 != 4 * ((len(data) + 2) // 3):
        return None
    prefix = f"data:{mime};base64,"
    return url if url.startswith(prefix) else prefix + url[comma + 1 :]


def decode_data_uri(url: str, max_bytes: int) -> bytes:
    """The payload of ``data:[<type>][;base64],<data>``; the claimed type is ignored (content is sniffed)."""
    comma = url.find(",")
    if comma < 0:
        raise MediaCorrupt("the data: URI has no `,` before its data")
    header, payload = url[5:comma], url[comma + 1 :]
    is_base64 = header.lower().endswith(";base64")
    if (len(payload) * 3 // 4 if is_base64 else len(payload) // 3) > max_bytes:
        raise MediaTooLarge(f"the data is larger than the limit of {max_bytes} bytes")
    if not is_base64:
        data = urllib.parse.unquote_to_bytes(payload)
    else:
        try:  # pybase64 (SIMD): a 300 KB payload in ~0.03 ms where binascii takes ~1 ms
            data = pybase64.b64decode(payload, validate=True)  # the usual case: no whitespace
        except (binascii.Error, ValueError):
            try:
                data = pybase64.b64decode("".join(payload.split()), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise MediaCorrupt("the data: URI's base64 is invalid") from exc
    if len(data) > max_bytes:
        raise MediaTooLarge(f"the data has {len(data)} bytes; the limit is {max_bytes}")
    if not data:
        raise MediaCorrupt("the data: URI is empty")
    return data


@dataclass(frozen=True)
class VideoJob:
    """Everything a worker needs to turn one video into frames or a clip (picklable)."""

    data: bytes
    sampling: Sampling
    limits: VideoLimits
    frame_pixels: int
    mode: str


@dataclass(frozen=True)
class VideoResult:
    duration_s: float
    times: list[float]
    frames: list[tuple[bytes, str]]  # encoded images, frames mode
    clip: bytes | None  # an MP4 of the sampled frames, native mode


def run_video_job(job: VideoJob) -> VideoResult:
    """Sample the video and encode the result, in one call so only bytes cross to and from a worker."""
    sampled = sample_video(job.data, job.sampling, job.limits, job.frame_pixels)
    times = [f.time_s for f in sampled.frames]
    if job.mode == "native":
        span = times[-1] - times[0]
        fps = (len(times) - 1) / span if len(times) > 1 and span > 0 else 1.0
        return VideoResult(sampled.duration_s, times, [], encode_clip([f.image for f in sampled.frames], fps))
    frames = [encode_image(f.image, lossless=False) for f in sampled.frames]
    return VideoResult(sampled.duration_s, times, frames, None)


def _frames_as_parts(result: VideoResult, batch: HandoffBatch) -> list[ContentPart]:
    """A line about the video, then per frame a line with its timestamp and the frame as an image."""
    span = f"{result.times[0]:.2f} s to {result.times[-1]:.2f} s"
    count = len(result.times)
    out: list[ContentPart] = [
        TextPart(f"Video ({result.duration_s:.2f} s long), {count} frames in order, from {span}:")
    ]
    for number, (time_s, (data, mime)) in enumerate(zip(result.times, result.frames, strict=True), start=1):
        out.append(TextPart(f"Frame {number} at {time_s:.2f} s:"))
        out.append(ImageUrlPart(ImageUrl(url=batch.put(data, mime))))
    return out


def _media_parts(messages: list[Message]) -> list[_Part]:
    found: list[_Part] = []
    for i, message in enumerate(messages):
        if isinstance(message, UserMessage) and isinstance(message.content, list):
            for j, part in enumerate(message.content):
                if isinstance(part, ImageUrlPart | VideoUrlPart):
                    found.append(_Part(i, j, part))
    return found


def _replace_parts(i: int, message: Message, by_place: dict[tuple[int, int], list[ContentPart]]) -> Message:
    if not isinstance(message, UserMessage) or not isinstance(message.content, list):
        return message
    content: list[ContentPart] = []
    for j, part in enumerate(message.content):
        content.extend(by_place.get((i, j), [part]))
    return msgspec.structs.replace(message, content=content)


async def _run_all(works: list[Awaitable[T]]) -> list[T]:
    """Await all concurrently; on the first failure cancel the rest and raise that failure itself."""
    tasks: list[asyncio.Task[T]] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_as_coroutine(w)) for w in works]
    except BaseExceptionGroup as group_error:
        raise group_error.exceptions[0] from None
    return [t.result() for t in tasks]


async def _as_coroutine(work: Awaitable[T]) -> T:
    return await work
