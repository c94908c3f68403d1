"""Tiny frames stores (zarr v3, the frames contract layout) for the tokenizer/latents tests."""

import hashlib
from pathlib import Path

import numpy as np
import zarr

from ahriuwu_core.data.checked_store import create_array


def make_frames_store(
    path: Path, num_frames: int = 12, size: int = 16, seed: int = 0, hud: bool = True, actions: bool = True
) -> Path:
    """Moving coloured squares on a gradient: distinct, smooth-ish frames."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    frames = np.zeros((num_frames, size, size, 3), np.uint8)
    for t in range(num_frames):
        img = np.stack([xx * 255 / size, yy * 255 / size, np.full_like(xx, 60 + 10 * seed)], -1).astype(np.float64)
        cx, cy = (3 + t + 2 * seed) % (size - 4), (2 + 2 * t) % (size - 4)
        img[cy : cy + 4, cx : cx + 4] = rng.integers(0, 256, 3)
        frames[t] = img.astype(np.uint8)
    g = zarr.open_group(str(path), mode="w")
    create_array(g, "frames", data=frames, chunks=(4, size, size, 3))
    mask = np.zeros((size, size), np.uint8)
    if hud:
        mask[-3:, -5:] = 1
    create_array(g, "hud_mask", data=mask)
    acts = rng.integers(0, 5, (num_frames, 2)).astype(np.int16)
    create_array(g, "actions", data=acts if actions else np.zeros_like(acts))
    create_array(g, "has_actions", data=np.full(num_frames, actions, bool))
    g.attrs.update(
        {
            "video_id": Path(path).stem,
            "fps": 20,
            "num_frames": num_frames,
            "size": [size, size],
            "content_hash": hashlib.sha256(frames.tobytes()).hexdigest(),
            "action_components": ["move", "ability"],
            "action_num_classes": [9, 5],
        }
    )
    return Path(path)
