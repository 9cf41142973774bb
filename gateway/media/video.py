"""Sample frames from a video with PyAV, seeking to keyframes instead of decoding every frame.

A first pass reads the packets without decoding them (cheap) to learn where the keyframes are and how long
the video is. For each wanted time the decoder jumps to the last keyframe at or before it and decodes
forward only to that time; when the next wanted time lies in the same group of pictures the decoder simply
continues. With keyframes every second or two (phones, cameras, streaming encoders) that decodes a small
share of the frames that "decode everything, then pick" decodes (``benchmarks/media.py`` measures it).

The container format is recognised from the first bytes and then forced, so FFmpeg never probes for other
demuxers (some of them, such as HLS playlists, would open further URLs or files named in the data).
"""

from __future__ import annotations

import bisect
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import av.container
import av.error
import av.video.frame
from av.video.stream import VideoStream
from PIL import Image

from gateway.media.errors import MediaCorrupt, MediaError, MediaTooLarge, MediaUnsupported


@dataclass(frozen=True)
class VideoLimits:
    max_bytes: int = 100 * 1024 * 1024
    max_duration_s: float = 600.0
    max_frames: int = 32  # frames sampled from one video
    max_pixels: int = 3840 * 2160  # source frame size


@dataclass(frozen=True)
class Sampling:
    """What to sample: ``num_frames`` uniformly, or ``fps`` frames per second, within [start, end)."""

    num_frames: int | None = 8
    fps: float | None = None
    start: float | None = None
    end: float | None = None


@dataclass
class SampledFrame:
    time_s: float
    image: Image.Image


@dataclass
class SampledVideo:
    frames: list[SampledFrame]
    duration_s: float
    width: int
    height: int
    container: str


def sniff_container(data: bytes) -> str:
    """The FFmpeg demuxer for ``data``: mov (MP4, MOV), matroska (WebM, MKV) or avi; refuse anything else."""
    if data[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        return "mov"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "avi"
    raise MediaUnsupported("the data is not a video in a supported container (MP4, MOV, WebM, MKV, AVI)")


def sample_video(data: bytes, sampling: Sampling, limits: VideoLimits, max_pixels: int = 0) -> SampledVideo:
    """Decode only what is needed to take the frames ``sampling`` asks for; raise a ``MediaError`` else.

    Frames come out upright (the container's display rotation applied) and, with ``max_pixels``, scaled
    down to at most that many pixels during the colour conversion (much cheaper than converting at full
    size and resizing afterwards).
    """
    if len(data) > limits.max_bytes:
        raise MediaTooLarge(f"the video has {len(data)} bytes; the limit is {limits.max_bytes}")
    fmt = sniff_container(data)
    try:
        with av.open(io.BytesIO(data), mode="r", format=fmt) as container:
            return _sample(container, fmt, sampling, limits, max_pixels)
    except MediaError:
        raise
    except (av.error.FFmpegError, ValueError, IndexError, EOFError, OSError) as exc:
        raise MediaCorrupt(f"the video could not be decoded ({exc})") from exc


def _sample(
    container: av.container.InputContainer,
    fmt: str,
    sampling: Sampling,
    limits: VideoLimits,
    max_pixels: int,
) -> SampledVideo:
    if not container.streams.video:
        raise MediaUnsupported("the file has no video stream")
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if width * height > limits.max_pixels:
        raise MediaTooLarge(f"the video is {width}x{height}; the limit is {limits.max_pixels} pixels a frame")
    index = KeyframeIndex.scan(container, stream)
    duration = index.duration_s
    if duration > limits.max_duration_s:
        raise MediaTooLarge(f"the video lasts {duration:.1f} s; the limit is {limits.max_duration_s:g} s")
    times = sample_times(duration, sampling, limits.max_frames)
    frames = list(_frames_at(container, stream, index, times, max_pixels))
    if not frames:
        raise MediaCorrupt("the video has no decodable frames")
    return SampledVideo(frames, duration, width, height, fmt)


def sample_times(duration: float, sampling: Sampling, max_frames: int) -> list[float]:
    """The wanted times in seconds: segment centres for ``num_frames``, steps of 1/fps for ``fps``."""
    start = sampling.start or 0.0
    end = min(sampling.end, duration) if sampling.end is not None else duration
    if start >= end:
        raise MediaUnsupported(f"the range {start:g}-{end:g} s is empty (the video lasts {duration:.2f} s)")
    span = end - start
    if sampling.fps is not None:
        count = max(1, math.floor(span * sampling.fps + 1e-9))
        times = [start + i / sampling.fps for i in range(count)]
    else:
        count = sampling.num_frames or 8
        times = [start + (i + 0.5) * span / count for i in range(count)]
    if count > max_frames:
        raise MediaTooLarge(f"{count} frames requested; the limit is {max_frames} frames a video")
    return times


@dataclass
class KeyframeIndex:
    """Keyframe timestamps (stream time base) and the duration, from one pass over the packets."""

    keyframes: list[int]
    start_pts: int
    duration_s: float

    @classmethod
    def scan(cls, container: av.container.InputContainer, stream: VideoStream) -> KeyframeIndex:
        keyframes: list[int] = []
        first: int | None = None
        last_end = 0
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            first = packet.pts if first is None else min(first, packet.pts)
            last_end = max(last_end, packet.pts + (packet.duration or 0))
            if packet.is_keyframe:
                keyframes.append(packet.pts)
        if first is None or stream.time_base is None:
            raise MediaCorrupt("the video stream has no frames")
        keyframes.sort()
        return cls(keyframes, first, float((last_end - first) * stream.time_base))

    def at_or_before(self, pts: int) -> int:
        position = bisect.bisect_right(self.keyframes, pts)
        return self.keyframes[position - 1] if position else self.start_pts


def _frames_at(
    container: av.container.InputContainer,
    stream: VideoStream,
    index: KeyframeIndex,
    times: list[float],
    max_pixels: int,
) -> Iterator[SampledFrame]:
    """For each time, the frame nearest to it; seek only when the target lies past the next keyframe."""
    assert stream.time_base is not None
    time_base = stream.time_base
    rate = stream.guessed_rate or stream.average_rate or 30
    guard = int(Fraction(2) / Fraction(rate) / time_base)  # two frame durations
    decoder = _SkippingDecoder(container, stream)
    previous: av.video.frame.VideoFrame | None = None
    current: av.video.frame.VideoFrame | None = None
    for time_s in times:
        target = index.start_pts + int(Fraction(time_s) / time_base)
        keyframe = index.at_or_before(target)
        if current is None or _pts(current) < keyframe:
            decoder.seek(keyframe)
            previous, current = None, None
        decoder.skip_before = target - guard
        while current is None or _pts(current) < target:
            following = decoder.next_frame()
            if following is None:
                break  # end of stream: the last frame stands for the rest
            previous, current = current, following
        best = current
        if previous is not None and current is not None and target - _pts(previous) <= _pts(current) - target:
            best = previous
        if best is not None:
            yield SampledFrame(
                float((_pts(best) - index.start_pts) * time_base), frame_image(best, max_pixels)
            )


class _SkippingDecoder:
    """Decodes one stream packet by packet, dropping non-reference frames that lie before ``skip_before``.

    Whether a packet is needed is decided from its own timestamp before it is decoded: a non-reference
    frame (most B-frames) earlier than the target cannot be the answer and no other frame needs it, so
    the decoder skips it (``skip_frame = NONREF``). Frames within two frame durations of the target are
    always decoded, so the nearest frame is never skipped.
    """

    def __init__(self, container: av.container.InputContainer, stream: VideoStream) -> None:
        self.container = container
        self.stream = stream
        self.skip_before = -1
        self._frames: Iterator[av.video.frame.VideoFrame] = iter(())

    def seek(self, keyframe: int) -> None:
        self.container.seek(keyframe, stream=self.stream, backward=True)
        self._frames = self._decode()

    def next_frame(self) -> av.video.frame.VideoFrame | None:
        return next((f for f in self._frames if f.pts is not None), None)

    def _decode(self) -> Iterator[av.video.frame.VideoFrame]:
        context = self.stream.codec_context
        for packet in self.container.demux(self.stream):
            far = packet.pts is not None and packet.pts < self.skip_before
            context.skip_frame = "NONREF" if far else "DEFAULT"
            yield from context.decode(packet)


def frame_image(frame: av.video.frame.VideoFrame, max_pixels: int = 0) -> Image.Image:
    """The frame as an upright RGB image, scaled (area averaging) to at most ``max_pixels`` when set."""
    width, height = frame.width, frame.height
    if max_pixels > 0 and width * height > max_pixels:
        scale = math.sqrt(max_pixels / (width * height))
        width, height = max(2, int(width * scale)), max(2, int(height * scale))
        image = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_image()
    else:
        image = frame.to_image()
    rotation = round(frame.rotation or 0) % 360
    return image.rotate(rotation, expand=True) if rotation else image


def _pts(frame: av.video.frame.VideoFrame) -> int:
    return frame.pts if frame.pts is not None else -1


def encode_clip(images: list[Image.Image], fps: float) -> bytes:
    """An MP4 of ``images`` at ``fps`` (native mode: the engine gets only the sampled frames)."""
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    width, height = (images[0].width // 2) * 2, (images[0].height // 2) * 2
    rate = Fraction(fps).limit_denominator(1000) if fps > 0 else Fraction(1)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream(codec, rate=rate)
        assert isinstance(stream, VideoStream)
        stream.width, stream.height, stream.pix_fmt = max(2, width), max(2, height), "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "veryfast", "crf": "20"}
        else:
            stream.bit_rate = 8_000_000
        for image in images:
            frame = av.VideoFrame.from_image(image.convert("RGB"))
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()
