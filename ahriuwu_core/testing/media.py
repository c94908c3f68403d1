"""Tiny synthetic clips for tests and benchmarks, written with PyAV.

Every frame of a "moving" clip carries its own index as a barcode: BARCODE_BITS vertical black/white bands over
the top half of the frame (most significant bit on the left). The bands survive H.264, resizing down to 64 px
wide and squashing, so a test can read back which source frame an output frame shows (`read_frame_index`).
The bottom half holds a gradient and a moving square so consecutive frames differ and nothing is frozen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import numpy as np

from ahriuwu_core.data.files import atomic_path

BARCODE_BITS = 10  # 1024 distinct frame indices; bands stay >= 6 px wide at 64 px output width
VFR_TIME_BASE = Fraction(1, 90000)


@dataclass
class Clip:
    path: Path
    times: list[float]  # presentation time of each frame, seconds, first = 0
    duration: float  # last time + last frame's duration
    width: int  # stored (coded) size; a rotated clip displays as (height, width) for 90/270
    height: int
    rotation: int | None = None
    frame_durations: list[float] = field(default_factory=list)


def draw_frame(index: int, width: int, height: int, pattern: str = "moving") -> np.ndarray:
    """RGB uint8 (height, width, 3) frame for `index` (see module docstring)."""
    if pattern == "black":
        return np.zeros((height, width, 3), np.uint8)
    if pattern == "dark":  # a near-black flicker (values 1 and 6): black to the eye, yet never frozen
        return np.full((height, width, 3), 6 if index % 2 else 1, np.uint8)
    if pattern == "frozen":
        index = 0
    elif pattern not in ("moving", "textured"):
        raise ValueError(f"unknown clip pattern {pattern!r}")
    img = np.empty((height, width, 3), np.uint8)
    top = height // 2
    # barcode: band b covers columns [b*W/BITS, (b+1)*W/BITS)
    cols = (np.arange(width) * BARCODE_BITS) // width
    bits = (index >> (BARCODE_BITS - 1 - cols)) & 1
    img[:top] = (bits * 255).astype(np.uint8)[None, :, None]
    # bottom: a gradient background and a square moving right with the frame index
    xs = np.linspace(40, 200, width, dtype=np.float32)
    img[top:, :, 0] = xs[None, :].astype(np.uint8)
    img[top:, :, 1] = np.linspace(60, 180, height - top, dtype=np.float32)[:, None].astype(np.uint8)
    img[top:, :, 2] = 120
    side = max(1, (height - top) // 2)
    x0 = (index * max(1, width // 50)) % max(1, width - side)
    y0 = top + (height - top - side) // 2
    img[y0 : y0 + side, x0 : x0 + side] = (250, 30, 30)
    if pattern == "textured":  # scrolling noise: costs the codec about what a panning game camera does
        img[top:] = np.roll(_noise(height - top, width), index * 4, axis=1) // 2 + img[top:] // 2
    return img


_NOISE_CACHE: dict = {}


def _noise(h: int, w: int) -> np.ndarray:
    if (h, w) not in _NOISE_CACHE:
        rng = np.random.default_rng(0)
        small = rng.integers(0, 256, size=(h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
        _NOISE_CACHE[(h, w)] = np.repeat(np.repeat(small, 4, 0), 4, 1)[:h, :w]
    return _NOISE_CACHE[(h, w)]


def read_frame_index(rgb: np.ndarray) -> int:
    """Inverse of the barcode in `draw_frame` for an upright RGB frame of any size (e.g. after resizing)."""
    height, width = rgb.shape[:2]
    band = rgb[height // 8 : (3 * height) // 8].astype(np.float32).mean(axis=(0, 2))  # per-column brightness
    index = 0
    for b in range(BARCODE_BITS):
        lo, hi = (b * width) / BARCODE_BITS, ((b + 1) * width) / BARCODE_BITS
        centre = band[int(lo + (hi - lo) * 0.3) : max(int(lo + (hi - lo) * 0.3) + 1, int(hi - (hi - lo) * 0.3))]
        index = (index << 1) | int(centre.mean() > 127)
    return index


def _vfr_times(n: int, fps: float, seed: int = 0) -> list[int]:
    """Irregular timestamps: intervals drawn from [0.4, 1.6] / fps, quantized to the 1/90000 time base."""
    rng = np.random.default_rng(seed)
    intervals = rng.uniform(0.4, 1.6, size=n - 1) / fps
    ticks = np.concatenate([[0], np.cumsum(np.round(intervals * VFR_TIME_BASE.denominator))]).astype(np.int64)
    return [int(t) for t in ticks]


def make_clip(
    path,
    *,
    seconds: float,
    fps=Fraction(30),
    width: int = 160,
    height: int = 90,
    pattern: str = "moving",
    vfr: bool = False,
    rotation: int | None = None,
    codec: str = "libx264",
    times: Sequence[float] | None = None,
    seed: int = 0,
    faststart: bool = False,
    codec_options: dict | None = None,
) -> Clip:
    """Write a synthetic video-only clip (mp4 by the suffix of `path`) and return its frame timestamps.

    fps: a Fraction/number (24, 25, Fraction(30000, 1001), 30, 60). vfr=True: irregular timestamps around that
    rate on a 1/90000 time base (or pass explicit `times` in seconds). rotation: display-matrix rotation in
    degrees counter-clockwise (as `VideoFrame.rotation` reports it); the pixels are stored rotated the other
    way, so a player that honours the matrix shows the upright pattern. codec_options: encoder options
    (default for libx264: ultrafast, crf 18; pass {"preset": "medium", "bf": "3"} for B-frames). faststart: the index
    (moov) goes first,
    as in files made for streaming, so a truncated copy still opens.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fps = Fraction(fps).limit_denominator(100000)
    n = max(1, int(round(seconds * fps)))
    if times is not None:
        tb = VFR_TIME_BASE
        ticks = [int(round(t / tb)) for t in times]
    elif vfr:
        tb = VFR_TIME_BASE
        ticks = _vfr_times(n, float(fps), seed)
    if times is not None or vfr:
        # the mp4 muxer gives the last frame the nominal duration 1/fps whatever we ask; say so in `ticks`
        ticks.append(ticks[-1] + int(round(1 / (fps * tb))))
    else:
        tb = 1 / fps
        ticks = list(range(n + 1))
    k = (rotation or 0) // 90
    if (rotation or 0) % 90:
        raise ValueError(f"rotation must be a multiple of 90, got {rotation}")
    coded_w, coded_h = (height, width) if k % 2 else (width, height)
    with atomic_path(path) as tmp:
        options = {"movflags": "faststart"} if faststart else {}
        with av.open(str(tmp), "w", options=options) as container:
            stream = container.add_stream(codec, rate=fps)
            stream.width, stream.height = coded_w, coded_h
            stream.pix_fmt = "yuv420p"
            stream.time_base = tb
            stream.codec_context.time_base = tb
            if codec_options is not None:
                stream.options = {k: str(v) for k, v in codec_options.items()}
            elif codec == "libx264":
                stream.options = {"preset": "ultrafast", "crf": "18"}
            elif codec == "libvpx-vp9":
                stream.options = {"deadline": "realtime", "cpu-used": "8", "crf": "20", "b": "0"}
            if rotation:
                stream.set_display_rotation(rotation)
            for i in range(len(ticks) - 1):
                upright = draw_frame(i, width, height, pattern)
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(upright, -k)), format="rgb24")
                frame.pts, frame.time_base = ticks[i], tb
                frame.duration = ticks[i + 1] - ticks[i]
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    times_s = [float((t - ticks[0]) * tb) for t in ticks]
    return Clip(
        path=path,
        times=times_s[:-1],
        duration=times_s[-1],
        width=coded_w,
        height=coded_h,
        rotation=rotation,
        frame_durations=[b - a for a, b in zip(times_s[:-1], times_s[1:])],
    )


def make_audio_only(path, *, seconds: float = 1.0, rate: int = 16000) -> Path:
    """An audio-only .mp4 (AAC sine tone): a source with no video stream."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        samples_per_frame = 1024
        total = int(seconds * rate)
        for start in range(0, total, samples_per_frame):
            t = (np.arange(start, start + samples_per_frame) / rate).astype(np.float32)
            frame = av.AudioFrame.from_ndarray((0.2 * np.sin(2 * np.pi * 440 * t))[None], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_actions_sidecar(path, times: Sequence[float], *, fps: float = 30.0, seed: int = 0) -> dict:
    """Write `<stem>.actions.json` for source frames at `times` (contract format); move = frame index % 9."""
    import json

    rng = np.random.default_rng(seed)
    frames = [{"t": round(float(t), 6), "move": i % 9, "ability": int(rng.integers(0, 5))} for i, t in enumerate(times)]
    doc = {"fps": float(fps), "components": ["move", "ability"], "num_classes": [9, 5], "frames": frames}
    Path(path).write_text(json.dumps(doc))
    return doc


def probe_frames(path) -> list[tuple[float, np.ndarray]]:
    """Decode every frame of `path` as (pts seconds, RGB array) without any rotation; for tests."""
    out = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            out.append((float(frame.pts * stream.time_base), frame.to_ndarray(format="rgb24")))
    return out
