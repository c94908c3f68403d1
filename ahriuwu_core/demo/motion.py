"""The demo game's scroll estimate: the map's apparent motion between two frames, with the HUD and the
champion (whom the camera keeps at the screen centre) faded out. The evaluation's callers pass it in as the
motion estimator for demo videos; other games use the evaluation's default."""
from __future__ import annotations

import numpy as np

from ahriuwu_core.demo.hud import HUD_REFERENCE_SIZE, hud_regions
from ahriuwu_core.motion import estimate_shift, motion_weights

_WEIGHTS: dict = {}


def scroll_ignore_mask(h: int, w: int) -> np.ndarray:
    """(H, W) uint8, 1 where the picture does not move with the map: the HUD regions and the champion sprite
    (with its bar and orbiting fox-fires), which the camera keeps at the screen centre."""
    mask = np.zeros((h, w), np.uint8)
    sx, sy = w / HUD_REFERENCE_SIZE[0], h / HUD_REFERENCE_SIZE[1]
    rects = list(hud_regions(w, h).values()) + [(w / 2 - 72 * sx, h / 2 - 72 * sy, 144 * sx, 144 * sy)]
    for x, y, rw, rh in rects:
        mask[max(0, int(round(y))):int(round(y + rh)), max(0, int(round(x))):int(round(x + rw))] = 1
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
