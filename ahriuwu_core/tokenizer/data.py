"""Training frames for the tokenizer: random windows of consecutive frames from frames stores, and evenly spaced
held-out frames."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import zarr

from ..data.checked_store import HashCheck
from ..data.checked_store import read as read_checked
from ..data.frames import open_frames


def game_mask(g: zarr.Group, path, H: int, W: int) -> np.ndarray:
    if "hud_mask" not in g:
        return np.ones((H, W), np.float32)
    m = np.asarray(g["hud_mask"][:])
    if m.shape != (H, W):
        raise ValueError(f"{path}: hud_mask shape {m.shape} != frame size {(H, W)}")
    return (m == 0).astype(np.float32)


class FrameWindowSampler:
    """Random windows of T consecutive frames from frames stores, chosen uniformly over all windows.
    Stores smaller than `memory_limit_bytes` in total are loaded into RAM once; otherwise windows are read
    from zarr. Its position is the numpy generator state (`state()` / `set_state()`), so resume is exact."""

    def __init__(self, stores, T: int, image_size: int, seed: int = 0, memory_limit_bytes: float = 2e9):
        if not stores:
            raise ValueError("no training frames stores given")
        self.T = T
        self.paths = [Path(p) for p in stores]
        self.groups = [open_frames(p) for p in self.paths]
        self.games, self.lengths = [], []
        for p, g in zip(self.paths, self.groups):
            shape = g["frames"].shape
            if len(shape) != 4 or shape[1:] != (image_size, image_size, 3):
                raise ValueError(
                    f"{p}: frames shape {shape} does not match the tokenizer's (T, {image_size}, {image_size}, 3)"
                )
            if shape[0] < T:
                raise ValueError(f"{p}: only {shape[0]} frames, fewer than frames_per_sample={T}")
            self.lengths.append(shape[0] - T + 1)
            self.games.append(game_mask(g, p, image_size, image_size))
        total = sum(g["frames"].nbytes for g in self.groups)
        self.arrays = (
            [load_frames(p, g) for p, g in zip(self.paths, self.groups)]
            if total <= memory_limit_bytes
            else [g["frames"] for g in self.groups]
        )
        self.weights = np.array(self.lengths, np.float64) / sum(self.lengths)
        self.rng = np.random.default_rng(seed)

    def state(self):
        return self.rng.bit_generator.state

    def set_state(self, state):
        self.rng.bit_generator.state = state

    def random_frames(self, n: int, seed: int) -> torch.Tensor:
        """n single frames drawn with their own generator (not the sampler's) -> float (n,3,H,W)."""
        rng = np.random.default_rng(seed)
        vids = rng.choice(len(self.arrays), size=n, p=self.weights)
        x = np.stack([read_checked(self.paths[v], self.arrays[v], int(rng.integers(0, self.lengths[v]))) for v in vids])
        return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """-> frames float (B,T,3,H,W) in [0,1], game weights (B,1,1,H,W)."""
        vids = self.rng.choice(len(self.arrays), size=batch_size, p=self.weights)
        starts = [int(self.rng.integers(0, self.lengths[v])) for v in vids]
        x = np.stack([read_checked(self.paths[v], self.arrays[v], slice(s, s + self.T)) for v, s in zip(vids, starts)])
        game = np.stack([self.games[v] for v in vids])
        frames = torch.from_numpy(x).permute(0, 1, 4, 2, 3).float() / 255.0
        return frames, torch.from_numpy(game)[:, None, None]


def load_frames(path: Path, group) -> np.ndarray:
    """A whole frames array, read and verified against the store's content_hash."""
    frames = read_checked(path, group["frames"])
    check = HashCheck(path, group.attrs.get("content_hash"))
    check.update(frames)
    check.verify()
    return frames


def heldout_frames(frames_stores, n: int, image_size: int) -> list[tuple[Path, np.ndarray, np.ndarray | None]]:
    """n frames evenly spaced over the held-out stores -> [(path, frames (k,H,W,3) uint8, hud_mask)]."""
    if not frames_stores or n <= 0:
        return []
    groups = [(Path(p), open_frames(p)) for p in frames_stores]
    per = max(1, math.ceil(n / len(groups)))
    out = []
    for p, g in groups:
        arr = g["frames"]
        if tuple(arr.shape[1:]) != (image_size, image_size, 3):
            raise ValueError(f"{p}: held-out frames shape {arr.shape} does not match image_size {image_size}")
        idx = np.unique(np.linspace(0, arr.shape[0] - 1, per).round().astype(int))
        frames = np.stack([read_checked(p, arr, int(i)) for i in idx])
        hud = np.asarray(g["hud_mask"][:]) if "hud_mask" in g else None
        out.append((p, frames, hud))
    return out
