"""Synthetic latent videos for tests and benches: a blob moving on a token grid, driven by actions.

Tokens sit on a g x g grid (N = g*g) with D channels. Each frame is a fixed background pattern plus a blob
feature vector at the blob's cell; the move `actions[t]` (moves and their alignment as in
`ahriuwu_core.data.conventions`: it led into frame t) moves the blob one cell (wrapping) between frame t-1 and frame t,
so the true next frame depends on the action. Values lie in [-1, 1] like the tokenizer's tanh bottleneck.
"""

from __future__ import annotations

import numpy as np

MOVES = [(0, 0), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1)]  # (dx, dy), y down


def make_toy_latents(num_frames: int, grid: int = 8, dim: int = 16, seed: int = 0, hold: int = 4):
    """Returns latents float32 (T, grid*grid, dim), actions int16 (T, 2), has_actions bool (T,).
    Actions change every `hold` frames (random move, ability 0 or random)."""
    rng = np.random.default_rng(seed)
    pattern_rng = np.random.default_rng(12345)  # same world look for every video
    background = 0.3 * np.tanh(pattern_rng.normal(size=(grid * grid, dim)))
    blob = 0.9 * np.sign(pattern_rng.normal(size=dim))
    x, y = rng.integers(0, grid, 2)
    lat = np.empty((num_frames, grid * grid, dim), np.float32)
    actions = np.zeros((num_frames, 2), np.int16)
    move = 0
    for t in range(num_frames):
        if t % hold == 0:
            move = int(rng.integers(0, 9))
        actions[t] = (move, int(rng.integers(0, 5)) if rng.random() < 0.2 else 0)
        if t > 0:
            dx, dy = MOVES[move]
            x, y = (x + dx) % grid, (y + dy) % grid
        frame = background.copy()
        frame[y * grid + x] = blob
        lat[t] = frame
    return lat, actions, np.ones(num_frames, bool)
