"""Where a source frame lands in an output frame, and which output pixels are HUD.

Resize modes (`FramesConfig.resize_mode`):
  squash     scale the whole display to (width, height), ignoring aspect ratio. DEFAULT: it keeps the whole
             screen, including the minimap and HUD at the edges, which crop would cut off.
  crop       scale to cover (width, height), keep the centre.
  letterbox  scale to fit inside, pad with zero bars; bars are marked in the HUD mask.

HUD: boxes per layout (`conventions.HUD_LAYOUTS`) in its reference pixel size, scaled to the source size and
mapped through the same resize into a (height, width) uint8 mask (1 = HUD). Pixels are never painted over: later
stages leave masked pixels out of the losses and metrics. An output pixel is HUD if it overlaps a box at all
(conservative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ahriuwu_core.data.conventions import HUD_LAYOUTS


@dataclass
class Geometry:
    """Display-space source (sw, sh) -> output: resize to (rw, rh), paste at (ox, oy) on a (W, H) canvas."""

    sw: int
    sh: int
    rw: int
    rh: int
    ox: int
    oy: int
    width: int
    height: int


def resize_geometry(sw: int, sh: int, width: int, height: int, mode: str) -> Geometry:
    if mode == "squash":
        return Geometry(sw, sh, width, height, 0, 0, width, height)
    if mode == "crop":
        s = max(width / sw, height / sh)
    elif mode == "letterbox":
        s = min(width / sw, height / sh)
    else:
        raise ValueError(f"unknown resize_mode {mode!r} (squash, crop, letterbox)")
    rw, rh = max(1, round(sw * s)), max(1, round(sh * s))
    return Geometry(sw, sh, rw, rh, (width - rw) // 2, (height - rh) // 2, width, height)


def hud_mask(geometry: Geometry, layout: str) -> np.ndarray:
    """(H, W) uint8 mask: 1 where an output pixel overlaps a HUD box or a letterbox bar."""
    if layout not in HUD_LAYOUTS:
        raise ValueError(f"unknown hud_layout {layout!r}; known: {sorted(HUD_LAYOUTS)}")
    g = geometry
    hud = HUD_LAYOUTS[layout]
    mask = np.ones((g.height, g.width), np.uint8)
    # the pasted image area is game (0) except where boxes cover it; everything else is bar (1)
    x0, y0 = max(g.ox, 0), max(g.oy, 0)
    mask[y0 : min(g.oy + g.rh, g.height), x0 : min(g.ox + g.rw, g.width)] = 0
    ref_w, ref_h = hud.reference_size
    sx, sy = g.rw / ref_w, g.rh / ref_h  # layout px -> source px -> output px (boxes scale with the source)
    eps = 1e-6
    for x, y, w, h in hud.boxes.values():
        a, b = x * sx + g.ox, (x + w) * sx + g.ox
        c, d = y * sy + g.oy, (y + h) * sy + g.oy
        cols = slice(max(0, math.floor(a + eps)), max(0, min(g.width, math.ceil(b - eps))))
        rows = slice(max(0, math.floor(c + eps)), max(0, min(g.height, math.ceil(d - eps))))
        mask[rows, cols] = 1
    return mask
