"""The demo game's scroll estimate: the map's apparent motion between two frames, with the HUD and the
champion (whom the camera keeps at the screen centre) faded out. The evaluation's callers pass it in as the
motion estimator for demo videos; other games use the evaluation's default."""

from __future__ import annotations

import numpy as np

from ahriuwu_core.demo.hud import HUD_REFERENCE_SIZE, hud_regions
from ahriuwu_core.images.motion import estimate_shift, motion_weights

_WEIGHTS: dict = {}


def scroll_ignore_mask(h: int, w: int) -> np.ndarray:
    """(H, W) uint8, 1 where the picture does not move with the map: the HUD regions and the champion sprite
    (with its bar and orbiting fox-fires), which the camera keeps at the screen centre."""
    mask = np.zeros((h, w), np.uint8)
    sx, sy = w / HUD_REFERENCE_SIZE[0], h / HUD_REFERENCE_SIZE[1]
    rects = list(hud_regions(w, h).values()) + [(w / 2 - 72 * sx, h / 2 - 72 * sy, 144 * sx, 144 * sy)]
    for x, y, rw, rh in rects:
        mask[max(0, int(round(y))) : int(round(y + rh)), max(0, int(round(x))) : int(round(x + rw))] = 1
    return mask


def estimate_scroll(frame_a: np.ndarray, frame_b: np.ndarray) -> tuple[float, float]:
    """The map's apparent motion (dx, dy) in pixels from frame_a to frame_b (content at x in frame_a appears at
    x + dx in frame_b): `motion.estimate_shift` over the game area, HUD and champion faded out. When the
    player moves by v, the map scrolls by about -v. Works on resized frames too (the layout scales)."""
    if frame_a.shape != frame_b.shape or frame_a.ndim != 3 or frame_a.shape[2] != 3:
        raise ValueError(f"estimate_scroll: frames must be HxWx3 of equal shape, got {frame_a.shape}, {frame_b.shape}")
    h, w = frame_a.shape[:2]
    if (h, w) not in _WEIGHTS:
        _WEIGHTS[h, w] = motion_weights(h, w, scroll_ignore_mask(h, w))
    return estimate_shift(frame_a, frame_b, _WEIGHTS[h, w])


def camera_track(sidecar_path, frames_store) -> np.ndarray | None:
    """(T, 2) the camera's position (x, y) in the frames store's pixels at each of its T frames, from the demo
    sidecar's `player_world_xy` (the camera follows the player's rounded position); None without a sidecar or
    positions in it. For scoring the demo (the scroll oracle baseline), never for a model: no other source knows this.
    Each stored frame shows the last source frame at or before its time (the frames stage's resampling)."""
    import json
    from pathlib import Path

    from ahriuwu_core.data.frame_geometry import resize_geometry
    from ahriuwu_core.data.frames import open_frames

    if not Path(sidecar_path).exists():
        return None
    doc = json.loads(Path(sidecar_path).read_text())
    xy = doc.get("player_world_xy")
    if not xy:
        return None
    attrs = open_frames(frames_store).attrs
    times = np.asarray([r["t"] for r in doc["frames"]], np.float64)
    stored_t = np.arange(int(attrs["num_frames"])) / float(attrs["fps"])
    source = np.clip(np.searchsorted(times, stored_t + 1e-9, side="right") - 1, 0, len(xy) - 1)
    (sw, sh), (w, h) = attrs["source_size"], attrs["size"]
    geom = resize_geometry(sw, sh, w, h, attrs["resize_mode"])
    return np.round(np.asarray(xy, np.float64)[source]) * [geom.rw / sw, geom.rh / sh]
