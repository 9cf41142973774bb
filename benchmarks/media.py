"""Media step speed: image decode-and-check, and frame sampling from a long video, each against a naive way.

1. Decode-and-check throughput for photo-like JPEGs of about 1 MB (``gateway.media.images.check_image``)
   against a naive check that always decodes the full image, applies EXIF orientation, converts, resizes
   and re-encodes it as JPEG (what a gateway does when it normalises every image), and against the same
   without the re-encoding (the decode-only floor), in two settings: no downscaling (the default), and
   downscaling to 448x448 pixels' worth (``media_image_resize_pixels``).
2. Latency to sample 16 frames from a 60 s 1280x720 30 fps H.264 clip generated here (a textured scene
   panning past with sensor noise, x264 `veryfast`: CABAC and B-frames like a camera's output)
   (``gateway.media.video.sample_video``: keyframe index, seek, decode forward to each target) against
   decoding every frame and then picking the 16 nearest; both convert the 16 frames the same way. Measured
   for a keyframe every 1 s (phones and cameras) and every 250 frames (x264's default, about 8 s), because
   the gain depends on it.

    uv run python benchmarks/media.py [--repeat 3]

No network at all. Target (issue 3): frame sampling at least 5x faster than decoding every frame.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.media.images import ImageLimits, check_image
from gateway.media.video import Sampling, VideoLimits, frame_image, sample_times, sample_video

FRAME_PIXELS = 640 * 640  # the default media_video_frame_pixels: both ways convert frames to this size


def photo_jpeg(seed: int, size: tuple[int, int] = (1800, 1350)) -> bytes:
    """About 1 MB: smooth gradients plus sensor-like noise, quality 90."""
    rng = np.random.default_rng(seed)
    width, height = size
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    base = np.stack([x * 200 + 20 + y * 0, y * 180 + 30 + x * 0, (x + y) * 90 + 10], axis=2)
    pixels = np.clip(base + rng.normal(0, 14, size=(height, width, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def naive_check(data: bytes, resize_max_pixels: int, reencode: bool = True) -> bytes:
    """Full decode, orientation, RGB, resize if asked, and (``reencode``) JPEG q92 as the gateway outputs."""
    image = Image.open(io.BytesIO(data))
    image.load()
    image = ImageOps.exif_transpose(image).convert("RGB")
    if resize_max_pixels and image.width * image.height > resize_max_pixels:
        scale = (resize_max_pixels / (image.width * image.height)) ** 0.5
        image = image.resize((int(image.width * scale), int(image.height * scale)), Image.Resampling.LANCZOS)
    if not reencode:
        return data
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=92)
    return out.getvalue()


def best_of(repeat: int, *runs: Callable[[], object]) -> list[float]:
    """The best time of each run, the runs alternating so that drift in the machine's speed hits all alike."""
    best = [float("inf")] * len(runs)
    for _ in range(repeat):
        for i, run in enumerate(runs):
            started = time.perf_counter()
            run()
            best[i] = min(best[i], time.perf_counter() - started)
    return best


def bench_images(repeat: int) -> None:
    images = [photo_jpeg(seed) for seed in range(8)]
    mb = statistics.mean(len(i) for i in images) / 1e6
    print(f"\n1. decode-and-check, {len(images)} JPEGs of {mb:.2f} MB (1800x1350), best of {repeat}")
    print(
        f"{'setting':26} {'naive img/s':>12} {'decode-only img/s':>18} {'gateway img/s':>14} {'vs naive':>9}"
    )
    n = len(images)
    for label, pixels in (("no downscale (default)", 0), ("downscale to 448x448 px", 448 * 448)):
        limits = ImageLimits(resize_max_pixels=pixels)
        naive, floor, ours = best_of(
            repeat,
            lambda p=pixels: [naive_check(i, p) for i in images],  # type: ignore[misc]
            lambda p=pixels: [naive_check(i, p, False) for i in images],  # type: ignore[misc]
            lambda lim=limits: [check_image(i, lim) for i in images],  # type: ignore[misc]
        )
        print(
            f"{label:26} {n / naive:12.1f} {n / floor:18.1f} {n / ours:14.1f} {naive / ours:8.1f}x",
            flush=True,
        )


def make_clip(seconds: int, fps: int, gop: int) -> bytes:
    """A camera-like clip: a textured scene panning past, sensor noise, x264 `veryfast` (CABAC, B-frames)."""
    width, height = 1280, 720
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 256, size=(height // 8, (width + seconds * fps * 4) // 8, 3), dtype=np.uint8)
    scene = np.repeat(np.repeat(scene, 8, axis=0), 8, axis=1)  # blocks of detail wider than the frame
    noise = rng.integers(-6, 7, size=(4, height, width, 3), dtype=np.int16)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"  # type: ignore[union-attr]
        stream.gop_size = gop  # type: ignore[union-attr]
        stream.options = {"preset": "veryfast", "keyint_min": str(gop), "sc_threshold": "0", "crf": "23"}  # type: ignore[union-attr]
        for i in range(seconds * fps):
            view = scene[:, i * 4 : i * 4 + width].astype(np.int16) + noise[i % 4]
            frame = np.clip(view, 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):  # type: ignore[union-attr]
                out.mux(packet)
        for packet in stream.encode(None):  # type: ignore[union-attr]
            out.mux(packet)
    return buf.getvalue()


def naive_sample(data: bytes, count: int) -> list[Image.Image]:
    """Decode every frame, keeping the one nearest each wanted time (only those 16 stay in memory)."""
    with av.open(io.BytesIO(data), format="mov") as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None and stream.duration is not None
        times = sample_times(float(stream.duration * stream.time_base), Sampling(num_frames=count), 10_000)
        best: list[tuple[float, av.VideoFrame | None]] = [(float("inf"), None)] * len(times)
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            at = float(frame.pts * stream.time_base)
            best = [
                (abs(at - t), frame) if abs(at - t) < d else (d, f)
                for t, (d, f) in zip(times, best, strict=True)
            ]
        return [frame_image(f, FRAME_PIXELS) for _, f in best if f is not None]


def bench_video(repeat: int) -> None:
    print(f"\n2. sample 16 frames from a 60 s 1280x720 30 fps H.264 clip, best of {repeat}")
    print(f"{'keyframes':22} {'MB':>6} {'naive s':>8} {'gateway s':>10} {'speed-up':>9}")
    limits = VideoLimits(max_duration_s=600, max_frames=32)
    for label, gop in (("every 1 s (30 fr)", 30), ("every ~8 s (250 fr)", 250)):
        clip = make_clip(60, 30, gop)
        ours_frames = sample_video(clip, Sampling(num_frames=16), limits, FRAME_PIXELS).frames
        naive_frames = naive_sample(clip, 16)
        assert len(ours_frames) == len(naive_frames) == 16
        for a, b in zip(ours_frames, naive_frames, strict=True):  # the same pictures, not just as many
            assert np.abs(np.asarray(a.image, np.int16) - np.asarray(b, np.int16)).mean() < 1.0
        naive, ours = best_of(
            repeat,
            lambda c=clip: naive_sample(c, 16),  # type: ignore[misc]
            lambda c=clip: sample_video(c, Sampling(num_frames=16), limits, FRAME_PIXELS),  # type: ignore[misc]
        )
        print(f"{label:22} {len(clip) / 1e6:6.1f} {naive:8.2f} {ours:10.2f} {naive / ours:8.1f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, PyAV {av.__version__}, FFmpeg {av.library_versions['libavcodec']}")
    bench_images(args.repeat)
    bench_video(args.repeat)


if __name__ == "__main__":
    main()
