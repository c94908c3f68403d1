"""The demo game's HUD: its layout (`conventions.HUD_LAYOUTS["demo"]`, scaled with the frame), the minimap,
the player's marker, the ability icons and bars, and finding the marker in a frame again."""

from __future__ import annotations

import numpy as np

from ahriuwu_core.data.conventions import HUD_LAYOUTS
from ahriuwu_core.demo.map import (
    TEAM_COLORS,
    WORLD_SIZE,
    blend_disc,
    blend_ring,
    clamp,
    fill_rect,
    get_world,
    minimap_image,
)

DEMO_HUD_REGIONS = HUD_LAYOUTS["demo"].boxes  # (x, y, w, h) at 640x360
HUD_REFERENCE_SIZE = HUD_LAYOUTS["demo"].reference_size
ABILITY_COLORS = ((90, 170, 255), (190, 90, 255), (255, 105, 180), (255, 205, 60))


def hud_regions(width: int = 640, height: int = 360) -> dict[str, tuple[int, int, int, int]]:
    """DEMO_HUD_REGIONS scaled from 640x360 to (width, height), as integer (x, y, w, h)."""
    sx, sy = width / HUD_REFERENCE_SIZE[0], height / HUD_REFERENCE_SIZE[1]
    out = {}
    for name, (x, y, w, h) in DEMO_HUD_REGIONS.items():
        x0, y0 = int(round(x * sx)), int(round(y * sy))
        out[name] = (x0, y0, int(round((x + w) * sx)) - x0, int(round((y + h) * sy)) - y0)
    return out


def minimap_inner(mw: int, mh: int) -> tuple[int, int, int, int]:
    b = 4 if min(mw, mh) >= 40 else 1
    return b, b, mw - 2 * b, mh - 2 * b


_HUD_CACHE: dict = {}


def minimap_base(mw: int, mh: int) -> np.ndarray:
    key = ("minimap", mw, mh)
    if key not in _HUD_CACHE:
        img = np.empty((mh, mw, 3), np.float32)
        img[:] = (18, 20, 26)
        ix, iy, iw, ih = minimap_inner(mw, mh)
        if ix > 1:
            img[iy - 2 : iy + ih + 2, ix - 2 : ix + iw + 2] = (140, 115, 60)  # gold frame line
        img[iy : iy + ih, ix : ix + iw] = minimap_image(iw, ih)
        for t in get_world().towers:
            tx, ty = ix + t.xy[0] / WORLD_SIZE * iw, iy + t.xy[1] / WORLD_SIZE * ih
            fill_rect(img, int(tx) - 1, int(ty) - 1, 3, 3, np.asarray(TEAM_COLORS[t.team]) * 0.8)
        _HUD_CACHE[key] = img.astype(np.uint8)
    return _HUD_CACHE[key]


def marker_size(width: int, height: int) -> float:
    return max(3.0, 5.0 * min(width / HUD_REFERENCE_SIZE[0], height / HUD_REFERENCE_SIZE[1]))


def minimap_marker_position(world_xy: tuple[float, float], width: int = 640, height: int = 360) -> tuple[float, float]:
    """Where the player's minimap marker is drawn in a (width x height) frame, in continuous pixel coordinates
    (pixel (i, j) covers [i, i+1) x [j, j+1), so the centre of pixel i is i + 0.5)."""
    mx, my, mw, mh = hud_regions(width, height)["minimap"]
    ix, iy, iw, ih = minimap_inner(mw, mh)
    return (mx + ix + world_xy[0] / WORLD_SIZE * iw, my + iy + world_xy[1] / WORLD_SIZE * ih)


_MARKER_SUBPIXEL = 16  # marker stamps are cached per 1/16 px offset


def _marker_stamp(size: float, fx: int, fy: int) -> tuple[np.ndarray, np.ndarray]:
    """(outline coverage, fill coverage) of the marker at sub-pixel offset (fx, fy)/16 inside a small patch whose
    pixel (0, 0) sits at floor(centre) - r."""
    key = ("marker", size, fx, fy)
    if key not in _HUD_CACHE:
        r = int(np.ceil(size / 2 + 1)) + 1
        cx, cy = r + fx / _MARKER_SUBPIXEL, r + fy / _MARKER_SUBPIXEL
        idx = np.arange(2 * r + 1)
        covs = []
        for side in (size + 2, size):
            half = side / 2
            cov_x = np.clip(np.minimum(idx + 1, cx + half) - np.maximum(idx, cx - half), 0, 1)
            cov_y = np.clip(np.minimum(idx + 1, cy + half) - np.maximum(idx, cy - half), 0, 1)
            covs.append((cov_y[:, None] * cov_x[None, :])[..., None].astype(np.float32))
        _HUD_CACHE[key] = (covs[0], covs[1])
    return _HUD_CACHE[key]


def draw_marker(img: np.ndarray, cx: float, cy: float, size: float) -> None:
    """A white square of side `size` centred at continuous (cx, cy) with a 1 px dark outline, anti-aliased by
    exact pixel coverage so its centroid moves smoothly with sub-pixel positions (marker kept inside img)."""
    ix, iy = int(np.floor(cx)), int(np.floor(cy))
    fx = int(round((cx - ix) * _MARKER_SUBPIXEL))
    fy = int(round((cy - iy) * _MARKER_SUBPIXEL))
    outline, fill = _marker_stamp(size, fx, fy)
    r = (outline.shape[0] - 1) // 2
    x0, y0 = ix - r, iy - r
    sx0, sy0 = max(0, -x0), max(0, -y0)  # clip the stamp to the image (tiny minimaps only)
    sx1, sy1 = min(outline.shape[1], img.shape[1] - x0), min(outline.shape[0], img.shape[0] - y0)
    if sx0 >= sx1 or sy0 >= sy1:
        return
    view = img[y0 + sy0 : y0 + sy1, x0 + sx0 : x0 + sx1]
    patch = view.astype(np.float32)
    patch *= 1 - outline[sy0:sy1, sx0:sx1]
    patch += (255 - patch) * fill[sy0:sy1, sx0:sx1]
    view[:] = patch + 0.5


def rect_outline(img, x, y, w, h, color, clip) -> None:
    cx0, cy0, cw, ch = clip
    x0, y0 = int(clamp(round(x), cx0, cx0 + cw - 1)), int(clamp(round(y), cy0, cy0 + ch - 1))
    x1, y1 = int(clamp(round(x + w), cx0, cx0 + cw - 1)), int(clamp(round(y + h), cy0, cy0 + ch - 1))
    img[y0, x0 : x1 + 1] = color
    img[y1, x0 : x1 + 1] = color
    img[y0 : y1 + 1, x0] = color
    img[y0 : y1 + 1, x1] = color


def icon_layout(aw: int, ah: int) -> list[tuple[int, int, int]]:
    """(x, y, size) of the 4 ability icons inside the abilities_health panel (panel pixel coordinates)."""
    size = max(4, int(round(ah * 0.72)))
    gap = max(1, int(round(size * 0.18)))
    y0 = (ah - size) // 2
    x0 = max(1, int(round(aw * 0.025)))
    return [(x0 + k * (size + gap), y0, size) for k in range(4)]


def ability_icon_rects(width: int = 640, height: int = 360) -> list[tuple[int, int, int, int]]:
    """Frame-coordinate (x, y, w, h) of the 4 ability icons."""
    ax, ay, aw, ah = hud_regions(width, height)["abilities_health"]
    return [(ax + x, ay + y, s, s) for x, y, s in icon_layout(aw, ah)]


def bar_layout(aw: int, ah: int):
    x0, _, size = icon_layout(aw, ah)[3]
    bx = x0 + size + max(2, int(round(aw * 0.03)))
    bw = max(2, aw - bx - max(1, int(round(aw * 0.025))))
    return (
        (bx, int(round(ah * 0.25)), bw, max(1, int(round(ah * 0.22)))),
        (bx, int(round(ah * 0.58)), bw, max(1, int(round(ah * 0.15)))),
    )


def panel_base(aw: int, ah: int) -> np.ndarray:
    key = ("panel", aw, ah)
    if key not in _HUD_CACHE:
        img = np.empty((ah, aw, 3), np.uint8)
        img[:] = (140, 115, 60)  # gold rim
        img[1:-1, 1:-1] = (14, 16, 22)
        for bx, by, bw, bh in bar_layout(aw, ah):
            fill_rect(img, bx - 1, by - 1, bw + 2, bh + 2, (0, 0, 0))
            fill_rect(img, bx, by, bw, bh, (45, 40, 40))
        _HUD_CACHE[key] = img
    return _HUD_CACHE[key]


def icon_art(size: int, k: int, greyed: bool) -> np.ndarray:
    key = ("icon", size, k, greyed)
    if key not in _HUD_CACHE:
        c = np.asarray(ABILITY_COLORS[k], np.float32)
        img = np.empty((size, size, 3), np.float32)
        img[:] = c * 0.3
        h = size / 2
        if k == 0:
            blend_disc(img, h, h, size * 0.3, c)
            blend_disc(img, h - size * 0.08, h - size * 0.08, size * 0.12, (235, 245, 255))
        elif k == 1:
            for a in np.arange(3) * 2 * np.pi / 3:
                blend_disc(img, h + size * 0.25 * np.cos(a), h + size * 0.25 * np.sin(a), size * 0.13, c)
        elif k == 2:
            for dx, dy in ((-0.1, -0.06), (0.1, -0.06), (0, 0.1)):
                blend_disc(img, h + dx * size, h + dy * size, size * 0.16, c)
        else:
            blend_ring(img, h, h, size * 0.3, size * 0.1, c)
        img[[0, -1], :] = img[:, [0, -1]] = (200, 180, 120)  # icon frame
        if greyed:
            luma = img @ np.asarray([0.299, 0.587, 0.114], np.float32)
            img = np.repeat((luma * 0.45 + 15)[..., None], 3, axis=-1)
        _HUD_CACHE[key] = np.clip(img, 0, 255).astype(np.uint8)
    return _HUD_CACHE[key]


def find_minimap_marker(frame: np.ndarray, width: int | None = None, height: int | None = None) -> tuple[float, float]:
    """(x, y) of the player's minimap marker in `frame` (HxWx3 uint8, rendered or decoded, possibly resized), in
    continuous pixel coordinates (see `minimap_marker_position`). The HUD layout scales with the frame, so the
    frame's own shape locates the minimap. By default (x, y) are in the frame's pixels; with width and height
    given they are rescaled to a width x height frame (e.g. 640, 360 for a frame resized from a 640x360 render)."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"find_minimap_marker: expected an HxWx3 frame, got shape {frame.shape}")
    h, w = frame.shape[:2]
    x, y = _find_marker(frame)
    if width is not None and height is not None:
        return x * width / w, y * height / h
    return x, y


def _find_marker(frame: np.ndarray) -> tuple[float, float]:
    h, w = frame.shape[:2]
    mx, my, mw, mh = hud_regions(w, h)["minimap"]
    luma = frame[my : my + mh, mx : mx + mw].astype(np.float32) @ np.asarray([0.299, 0.587, 0.114], np.float32)
    k = max(1, int(round(marker_size(w, h))))
    # Box-filter so the k x k marker beats any single bright pixel (minion dots, the view rectangle's lines).
    c = np.cumsum(np.cumsum(np.pad(luma, ((1, 0), (1, 0))), 0), 1)
    box = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
    by, bx = np.unravel_index(int(np.argmax(box)), box.shape)
    r = k // 2 + 2
    y0, x0 = max(0, by + k // 2 - r), max(0, bx + k // 2 - r)
    win = luma[y0 : by + k // 2 + r + 1, x0 : bx + k // 2 + r + 1]
    weights = np.clip(win - 0.5 * (win.max() + np.median(luma)), 0, None)
    ys, xs = np.mgrid[0 : win.shape[0], 0 : win.shape[1]]
    total = weights.sum()
    return (
        float(mx + x0 + (weights * (xs + 0.5)).sum() / total),
        float(my + y0 + (weights * (ys + 0.5)).sum() / total),
    )
