"""Global image motion: phase correlation between two frames, and sub-pixel translation of a frame.

Used by the evaluation for the `persistence_motion` baseline (the last frame carried forward at the velocity
of the last two context frames) and for action agreement (does the dreamed view scroll against the move?).
Works on any game's frames: the caller passes weights that fade out what does not move with the scene (the
HUD; for a camera locked on the player, the player sprite).
"""

from __future__ import annotations

import numpy as np

_LUMA = np.asarray([0.299, 0.587, 0.114], np.float32)


def motion_weights(height: int, width: int, ignore: np.ndarray | None = None, ramp: float = 0.04) -> np.ndarray:
    """Hann window x a mask that is 0 on `ignore` (H, W, nonzero = static overlay) and ramps to 1 over
    `ramp` of the frame size: hard mask edges would themselves correlate at zero shift."""
    window = np.outer(np.hanning(height), np.hanning(width)).astype(np.float32)
    if ignore is None or not np.any(ignore):
        return window
    from scipy.ndimage import distance_transform_edt

    dist = distance_transform_edt(np.asarray(ignore) == 0)
    fade = np.clip(dist / max(1.0, ramp * max(height, width)), 0.0, 1.0).astype(np.float32)
    return window * fade


def estimate_shift(frame_a: np.ndarray, frame_b: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float]:
    """(dx, dy) in pixels such that content at x in frame_a appears at x + dx in frame_b. Frames are (H, W, 3)
    uint8/float or (H, W) gray. Partially whitened phase correlation (large scene features outweigh small moving
    sprites) with a parabolic sub-pixel peak."""
    if frame_a.shape != frame_b.shape or frame_a.ndim not in (2, 3):
        raise ValueError(f"estimate_shift: frames must be HxW(x3) of equal shape, got {frame_a.shape}, {frame_b.shape}")
    a = frame_a.astype(np.float32) @ _LUMA if frame_a.ndim == 3 else frame_a.astype(np.float32)
    b = frame_b.astype(np.float32) @ _LUMA if frame_b.ndim == 3 else frame_b.astype(np.float32)
    h, w = a.shape
    weights = motion_weights(h, w) if weights is None else weights
    norm = float(weights.sum()) or 1.0
    fa = np.fft.rfft2((a - (a * weights).sum() / norm) * weights)
    fb = np.fft.rfft2((b - (b * weights).sum() / norm) * weights)
    cross = np.conj(fa) * fb
    corr = np.fft.irfft2(cross / (np.abs(cross) ** 0.8 + 1e-6), s=a.shape)
    py, px = np.unravel_index(int(np.argmax(corr)), corr.shape)

    def refine(c_m, c_0, c_p) -> float:  # parabola through the peak and its neighbours
        denom = c_m - 2 * c_0 + c_p
        return 0.0 if denom == 0 else float(np.clip(0.5 * (c_m - c_p) / denom, -0.5, 0.5))

    dx = px + refine(corr[py, px - 1], corr[py, px], corr[py, (px + 1) % w])
    dy = py + refine(corr[py - 1, px], corr[py, px], corr[(py + 1) % h, px])
    if dx > w / 2:
        dx -= w
    if dy > h / 2:
        dy -= h
    return float(dx), float(dy)


def shift_image(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Translate (H, W, C) by (dx, dy) pixels with bilinear resampling; pixels entering the view repeat the edge
    (the least-wrong guess for map that scrolls in). Returns the input's dtype."""
    from scipy.ndimage import shift

    out = shift(image.astype(np.float32), (dy, dx, 0), order=1, mode="nearest")
    if np.issubdtype(image.dtype, np.integer):
        return np.clip(out + 0.5, 0, np.iinfo(image.dtype).max).astype(image.dtype)
    return out.astype(image.dtype)


def constant_velocity_rollout(
    previous: np.ndarray, last: np.ndarray, horizon: int, estimate=estimate_shift
) -> np.ndarray:
    """The `persistence_motion` baseline: `last` shifted by h times the motion from `previous` to `last`
    (`estimate(a, b) -> (dx, dy)`), for h = 1..horizon. Needs no actions. Returns (horizon, H, W, C)."""
    dx, dy = estimate(previous, last)
    return np.stack([shift_image(last, h * dx, h * dy) for h in range(1, horizon + 1)])
