"""Video sampling with PyAV on videos generated in the tests (mp4/H.264, webm/VP9, mov/MPEG-4)."""

from __future__ import annotations

import pytest

from gateway.media.errors import MediaCorrupt, MediaTooLarge, MediaUnsupported
from gateway.media.video import Sampling, VideoLimits, encode_clip, sample_times, sample_video
from tests.support.media import frame_level, image_bytes, video_bytes

LIMITS = VideoLimits()


def level(frame_image: object) -> int:
    r, g, b = frame_image.getpixel((20, 20))  # type: ignore[attr-defined]
    return round((r + g + b) / 3)


def test_uniform_frames_are_the_segment_centres_in_order() -> None:
    video = sample_video(video_bytes(seconds=4, fps=10, gop=5), Sampling(num_frames=4), LIMITS)
    assert video.duration_s == pytest.approx(4.0)
    assert [f.time_s for f in video.frames] == pytest.approx([0.5, 1.5, 2.5, 3.5])
    # the picture really is the frame at that time (frame i has grey level frame_level(i))
    assert [level(f.image) for f in video.frames] == pytest.approx(
        [frame_level(i) for i in (5, 15, 25, 35)], abs=4
    )


def test_fps_with_start_and_end() -> None:
    video = sample_video(
        video_bytes(seconds=5, fps=10), Sampling(num_frames=None, fps=2, start=1, end=3), LIMITS
    )
    assert [f.time_s for f in video.frames] == pytest.approx([1.0, 1.5, 2.0, 2.5])


def test_end_past_the_video_is_clamped() -> None:
    video = sample_video(video_bytes(seconds=2), Sampling(num_frames=2, start=1, end=99), LIMITS)
    assert [f.time_s for f in video.frames] == pytest.approx([1.2, 1.7], abs=0.11)


@pytest.mark.parametrize(("container", "codec"), [("webm", "libvpx-vp9"), ("mov", "mpeg4"), ("mp4", "mpeg4")])
def test_other_containers_and_codecs(container: str, codec: str) -> None:
    video = sample_video(
        video_bytes(seconds=2, container=container, codec=codec), Sampling(num_frames=4), LIMITS
    )
    assert len(video.frames) == 4 and video.frames[0].image.size == (64, 48)


def test_more_frames_than_the_video_has_repeats_the_nearest() -> None:
    video = sample_video(video_bytes(seconds=1, fps=2), Sampling(num_frames=6), LIMITS)
    times = [f.time_s for f in video.frames]
    assert len(times) == 6 and times == sorted(times) and set(times) <= {0.0, 0.5}


def test_limits_on_duration_frames_bytes_and_size() -> None:
    data = video_bytes(seconds=3)
    with pytest.raises(MediaTooLarge, match=r"lasts 3\.0 s"):
        sample_video(data, Sampling(), VideoLimits(max_duration_s=2))
    with pytest.raises(MediaTooLarge, match="40 frames requested"):
        sample_video(data, Sampling(num_frames=40), VideoLimits(max_frames=32))
    with pytest.raises(MediaTooLarge, match="bytes"):
        sample_video(data, Sampling(), VideoLimits(max_bytes=100))
    with pytest.raises(MediaTooLarge, match="64x48"):
        sample_video(data, Sampling(), VideoLimits(max_pixels=1000))


def test_empty_range_is_refused() -> None:
    with pytest.raises(MediaUnsupported, match="empty"):
        sample_video(video_bytes(seconds=2), Sampling(start=5), LIMITS)


def test_not_a_video_and_an_image_are_unsupported() -> None:
    for data in (b"#EXTM3U\n#EXT-X-STREAM-INF\nfile:///etc/passwd\n", image_bytes("PNG")):
        with pytest.raises(MediaUnsupported, match="supported container"):
            sample_video(data, Sampling(), LIMITS)


def test_truncated_video_is_corrupt() -> None:
    data = video_bytes(seconds=2)
    with pytest.raises(MediaCorrupt):
        sample_video(data[:200], Sampling(), LIMITS)


def test_sample_times() -> None:
    assert sample_times(10.0, Sampling(num_frames=5), 32) == pytest.approx([1, 3, 5, 7, 9])
    assert sample_times(10.0, Sampling(num_frames=None, fps=0.5), 32) == pytest.approx([0, 2, 4, 6, 8])
    assert sample_times(0.2, Sampling(num_frames=None, fps=1), 32) == [0.0]


def test_encoded_clip_decodes_to_the_same_frames() -> None:
    video = sample_video(video_bytes(seconds=4, fps=10), Sampling(num_frames=4), LIMITS)
    clip = encode_clip([f.image for f in video.frames], fps=1.0)
    again = sample_video(clip, Sampling(num_frames=4), LIMITS)
    assert again.duration_s == pytest.approx(4.0)
    assert [level(f.image) for f in again.frames] == pytest.approx(
        [level(f.image) for f in video.frames], abs=4
    )


def test_frames_are_scaled_during_conversion_keeping_the_aspect_ratio() -> None:
    video = sample_video(
        video_bytes(seconds=1, size=(320, 240)), Sampling(num_frames=2), LIMITS, max_pixels=4800
    )
    width, height = video.frames[0].image.size
    assert width * height <= 4800 and abs(width / height - 4 / 3) < 0.05


def test_display_rotation_is_applied() -> None:
    """Rotated 90 degrees counter-clockwise for display: 64x48 becomes 48x64, the top-left mark moves down."""
    video = sample_video(video_bytes(seconds=1, rotation=90), Sampling(num_frames=1), LIMITS)
    image = video.frames[0].image
    assert image.size == (48, 64)
    r, g, _ = image.getpixel((2, 61))  # type: ignore[misc]
    assert r > 200 and g < 60


def nearest_by_decoding_everything(data: bytes, times: list[float]) -> list[float]:
    """The reference answer: decode every frame, take the nearest to each time (ties to the earlier)."""
    import io

    import av

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        stamps = [float(f.pts * stream.time_base) for f in container.decode(stream) if f.pts is not None]  # type: ignore[operator]
    start = min(stamps)
    return [min(stamps, key=lambda s, t=t: (abs(s - start - t), s)) - start for t in times]  # type: ignore[misc]


@pytest.mark.parametrize("sampling", [Sampling(num_frames=7), Sampling(num_frames=None, fps=3.0, start=0.4)])
def test_seeking_and_skipping_give_the_frames_decoding_everything_gives(sampling: Sampling) -> None:
    """B-frames (x264 default preset) and a keyframe every 12 frames: seeks, continuing, skipping."""
    data = video_bytes(seconds=6, fps=24, gop=12)
    video = sample_video(data, sampling, LIMITS)
    times = sample_times(video.duration_s, sampling, 100)
    assert [f.time_s for f in video.frames] == pytest.approx(nearest_by_decoding_everything(data, times))
    assert [level(f.image) for f in video.frames] == pytest.approx(
        [frame_level(round(f.time_s * 24)) for f in video.frames], abs=4
    )
