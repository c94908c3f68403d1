"""Decode a video, resample it to exactly 20 fps by presentation timestamp, resize, store as a zarr v3 group.

Timestamp rule: output frame k has time k/fps (seconds after the first frame's pts) and shows the latest source
frame whose pts <= k/fps. The count is floor(duration * fps), duration = last pts + last frame's duration, both
relative to the first pts. Times are exact Fractions (pts * time_base), so 29.97 fps sources don't drift.
Only source frames that are emitted get converted and resized; the others are decoded and dropped.
Rotation metadata (display matrix) is applied, so phone videos come out upright. The resize modes and the HUD mask
are `frame_geometry`'s; chunked writing and the time-step statistics `frame_stream`'s.

Output (see the design contract): frames uint8 (T, H, W, 3) chunked (chunk_frames, H, W, 3) so the training
reader fetches a window of consecutive frames with one or two chunk reads; actions int16 (T, C); has_actions
bool (T,); hud_mask uint8 (H, W); attrs incl. content_hash = sha256 of the frames bytes. Written to
a temp store beside it (`files.atomic_path`) then renamed, so the final path only ever holds a complete store.
"""

from __future__ import annotations

import errno
import math
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.video.reformatter
import numpy as np
import zarr

from ahriuwu_core.data.checked_store import create_array, open_checked
from ahriuwu_core.data.conventions import DEFAULT_ACTION_COMPONENTS, DEFAULT_ACTION_NUM_CLASSES, HUD_LAYOUTS
from ahriuwu_core.data.files import atomic_path
from ahriuwu_core.data.frame_geometry import hud_mask, resize_geometry
from ahriuwu_core.data.frame_stream import ChunkWriter, StepJitter
from ahriuwu_core.data.sidecar import SidecarError, align_actions, load_actions

_INTERPOLATIONS = {"area": "AREA", "bilinear": "BILINEAR", "bicubic": "BICUBIC", "fast_bilinear": "FAST_BILINEAR"}


class FramesError(RuntimeError):
    """A video (or its actions sidecar) could not be turned into a frames store; the message names the file."""


@dataclass
class FramesConfig:
    fps: int = 20
    width: int = 64
    height: int = 64
    resize_mode: str = "squash"  # "squash" (default, keeps the whole screen) | "crop" | "letterbox"
    hud_layout: str = "none"  # key of conventions.HUD_LAYOUTS
    chunk_frames: int = 32  # time chunk of the frames array (training reads windows of ~16-64 frames)
    interpolation: str = "area"  # swscale filter for the downscale
    min_source_side: int = 32  # smaller sources are rejected: upscaled thumbnails teach the model nothing
    decode_threads: int = 0  # 0 = FFmpeg's choice


def _open_video(path: Path):
    if not path.exists():
        raise FramesError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise FramesError(f"{path}: empty file (0 bytes)")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise FramesError(f"{path}: not a readable video ({e})") from e
    if not container.streams.video:
        container.close()
        raise FramesError(f"{path}: has no video stream (audio-only?)")
    return container


def extract_frames(
    video_path, out_store, cfg: FramesConfig | None = None, actions_path=None, video_id: str | None = None
) -> dict:
    """Decode `video_path` into the zarr store `out_store` (atomically) and return stats (see module doc)."""
    cfg = cfg or FramesConfig()
    video_path, out_store = Path(video_path), Path(out_store)
    video_id = video_id or video_path.stem
    if cfg.hud_layout not in HUD_LAYOUTS:
        raise ValueError(f"unknown hud_layout {cfg.hud_layout!r}; known: {sorted(HUD_LAYOUTS)}")
    try:
        actions = load_actions(actions_path) if actions_path is not None else None
    except SidecarError as e:  # the video's own error: it fails this video's partition, never its siblings
        raise FramesError(str(e)) from e
    start = time.perf_counter()
    try:
        with atomic_path(out_store) as tmp, _open_video(video_path) as container:
            stats = _decode_into(container, video_path, tmp, cfg, actions, video_id)
    except FramesError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as e:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):  # the output's fault, not the video's
            raise FramesError(f"no space left on device writing {out_store} (frames of {video_path}): {e}") from e
        raise FramesError(f"{video_path}: decoding failed ({type(e).__name__}: {e})") from e
    seconds = time.perf_counter() - start
    stats.update(
        seconds=round(seconds, 3),
        frames_per_s=round(stats["source_frames"] / max(seconds, 1e-9), 1),
        store=str(out_store),
    )
    return stats


def _decode_into(container, video_path: Path, tmp: Path, cfg: FramesConfig, actions, video_id: str) -> dict:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    if cfg.decode_threads:
        stream.codec_context.thread_count = cfg.decode_threads
    tb = stream.time_base
    interpolation = _INTERPOLATIONS[cfg.interpolation]
    W, H, fps = cfg.width, cfg.height, cfg.fps

    frames_iter = container.decode(stream)
    first = next(frames_iter, None)
    if first is None:
        raise FramesError(f"{video_path}: the video stream has no decodable frames")
    rotation = int(round((first.rotation or 0) / 90)) % 4  # quarter turns counter-clockwise
    sw, sh = (first.height, first.width) if rotation % 2 else (first.width, first.height)
    if min(sw, sh) < cfg.min_source_side:
        raise FramesError(f"{video_path}: source {sw}x{sh} is too small (smaller side < {cfg.min_source_side} px)")
    geom = resize_geometry(sw, sh, W, H, cfg.resize_mode)
    # resize in the stored orientation, then rotate the small result
    stored_rw, stored_rh = (geom.rh, geom.rw) if rotation % 2 else (geom.rw, geom.rh)

    reformatter = av.video.reformatter.VideoReformatter()  # one SwsContext for the whole video (~2x faster)

    def convert(frame) -> np.ndarray:
        small = reformatter.reformat(
            frame, stored_rw, stored_rh, format="rgb24", interpolation=interpolation
        ).to_ndarray()
        if rotation:
            small = np.rot90(small, rotation)
        if (geom.rw, geom.rh, geom.ox, geom.oy) == (W, H, 0, 0):
            return small
        canvas = np.zeros((H, W, 3), np.uint8)
        x0, y0 = max(geom.ox, 0), max(geom.oy, 0)
        canvas[y0 : y0 + min(H, geom.rh), x0 : x0 + min(W, geom.rw)] = small[
            y0 - geom.oy : y0 - geom.oy + min(H, geom.rh), x0 - geom.ox : x0 - geom.ox + min(W, geom.rw)
        ]
        return canvas

    tmp.mkdir(parents=True)
    group = zarr.open_group(str(tmp), mode="w")
    frames_arr = create_array(group, "frames", shape=(0, H, W, 3), chunks=(cfg.chunk_frames, H, W, 3), dtype="uint8")
    writer = ChunkWriter(frames_arr, cfg.chunk_frames, H, W)

    t0 = first.pts
    if t0 is None:
        raise FramesError(f"{video_path}: frames carry no timestamps")
    pending, pending_t = first, Fraction(0)
    prev_t = None
    next_k = 0
    n_source = 1
    jitter = StepJitter(fps)

    def emit_until(limit: Fraction) -> None:
        # emit `pending` for every output time k/fps < limit
        nonlocal next_k
        copies = max(0, math.ceil(limit * fps) - next_k)
        if copies:
            writer.add(convert(pending), copies)
            jitter.add(pending_t, copies)
            next_k += copies

    for frame in frames_iter:
        n_source += 1
        if frame.pts is None:
            raise FramesError(f"{video_path}: frame {n_source - 1} has no timestamp")
        t = (frame.pts - t0) * tb
        if t < pending_t:
            continue  # out-of-order timestamp: keep the timeline monotonic
        emit_until(t)
        prev_t, pending, pending_t = pending_t, frame, t
    if pending.duration:
        last_duration = pending.duration * tb
    elif prev_t is not None:
        last_duration = pending_t - prev_t
    else:
        last_duration = 1 / Fraction(stream.average_rate or stream.guessed_rate or 30)
    duration = pending_t + last_duration
    num_frames = math.floor(duration * fps)
    emit_until(Fraction(num_frames, fps))
    # the last source frame's interval may end mid output frame: that partial frame is not emitted
    writer.drop_last(max(0, writer.total - num_frames))
    writer.flush()
    if writer.n_written != num_frames:
        raise FramesError(f"{video_path}: wrote {writer.n_written} frames, expected {num_frames}")
    if num_frames == 0:
        raise FramesError(f"{video_path}: shorter than one output frame ({float(duration):.3f} s)")

    if stream.duration is not None:
        container_duration = float(stream.duration * tb)
    elif container.duration is not None:
        container_duration = container.duration / 1e6
    else:
        container_duration = float(duration)
    # A truncated file whose index is up front (faststart) opens fine and just stops early: refuse it. The
    # container's duration counts every stream, so allow more slack when the video stream has none of its own.
    slack = max(0.25, (0.02 if stream.duration is not None else 0.05) * container_duration)
    if container_duration - float(duration) > slack:
        raise FramesError(
            f"{video_path}: truncated or corrupt: decoded {float(duration):.2f} s of the "
            f"{container_duration:.2f} s the container declares"
        )
    actions_arr, has_actions = align_actions(actions, num_frames, fps)
    create_array(group, "actions", data=actions_arr, chunks=(max(1, min(4096, num_frames)), actions_arr.shape[1]))
    create_array(group, "has_actions", data=has_actions, chunks=(max(1, min(4096, num_frames)),))
    mask = hud_mask(geom, cfg.hud_layout)
    create_array(group, "hud_mask", data=mask, chunks=(H, W))

    source_fps = float(stream.average_rate) if stream.average_rate else n_source / float(duration)
    stats = {
        "video_id": video_id,
        "num_frames": num_frames,
        "duration_s": float(duration),
        "container_duration_s": container_duration,
        "fps": fps,
        "source_fps": round(source_fps, 4),
        "source_frames": n_source,
        "source_size": [sw, sh],
        "size": [W, H],
        "rotation": rotation * 90,
        "resize_mode": cfg.resize_mode,
        "hud_layout": cfg.hud_layout,
        "content_hash": writer.sha.hexdigest(),
        "mask_coverage": round(float(mask.mean()), 4),
        "mean_intensity": round(writer.sum / max(num_frames, 1) / 255.0, 4),
        "frozen_fraction": round(writer.frozen_pairs / max(num_frames - 1, 1), 4),
        "action_components": list(actions["components"]) if actions else list(DEFAULT_ACTION_COMPONENTS),
        "action_num_classes": list(actions["num_classes"]) if actions else list(DEFAULT_ACTION_NUM_CLASSES),
        "has_actions_fraction": round(float(has_actions.mean()), 4),
        **jitter.stats(),
    }
    group.attrs.update(
        {
            k: stats[k]
            for k in (
                "video_id",
                "fps",
                "source_fps",
                "source_size",
                "size",
                "resize_mode",
                "num_frames",
                "duration_s",
                "hud_layout",
                "action_components",
                "action_num_classes",
                "content_hash",
                "rotation",
                "mask_coverage",
                "time_step_jitter_ms",
                "time_step_range_ms",
            )
        }
    )
    return stats


def open_frames(store, require: tuple[str, ...] = ("frames",)) -> zarr.Group:
    """Open a frames store read-only (group with frames / actions / has_actions / hud_mask): the `require`d
    arrays must be there, and no array may miss a chunk (`checked_store.open_checked`)."""
    store = Path(store)
    if not store.exists():
        raise FileNotFoundError(f"frames store not found: {store}")
    if not (store / "zarr.json").exists():
        raise FramesError(f"{store}: not a frames store (no zarr.json)")
    group = open_checked(store, ("frames", "actions", "has_actions", "hud_mask"))
    for name in require:
        if name not in group:
            raise FramesError(f"frames store {store} has no '{name}' array")
    return group


def check_frame_count(stats: dict) -> tuple[bool, dict]:
    """Frame count equals floor(container-reported duration x fps) within 1 (catches early decode stops)."""
    expected = math.floor(stats["container_duration_s"] * stats["fps"])
    details = {
        "num_frames": stats["num_frames"],
        "expected": expected,
        "container_duration_s": stats["container_duration_s"],
    }
    return abs(stats["num_frames"] - expected) <= 1, details


def check_not_black_or_frozen(
    store, *, black_below: float = 4 / 255, frozen_diff: float = 1.0, max_frozen_fraction: float = 0.95
) -> tuple[bool, dict]:
    """Reads the store chunk by chunk: fails when the mean pixel value (in [0, 1], like stats' mean_intensity)
    < black_below, or when more than max_frozen_fraction of consecutive frame pairs differ by < frozen_diff
    (mean absolute difference in 0..255 units)."""
    arr = open_frames(store)["frames"]
    total, frozen, pairs, prev = 0.0, 0, 0, None
    step = arr.chunks[0]
    for start in range(0, arr.shape[0], step):
        block = np.asarray(arr[start : start + step]).astype(np.int16)
        total += float(block.mean()) * len(block)
        seq = block if prev is None else np.concatenate([prev[None], block])
        diffs = np.abs(np.diff(seq, axis=0)).mean(axis=(1, 2, 3))
        frozen += int((diffs < frozen_diff).sum())
        pairs += len(diffs)
        prev = block[-1]
    n = arr.shape[0]
    mean = total / max(n, 1) / 255.0
    frozen_fraction = frozen / max(pairs, 1)
    details = {"mean_intensity": round(mean, 4), "frozen_fraction": round(frozen_fraction, 4), "num_frames": n}
    passed = n > 0 and mean >= black_below and (pairs == 0 or frozen_fraction <= max_frozen_fraction)
    return passed, details
