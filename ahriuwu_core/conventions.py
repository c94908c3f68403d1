"""The action convention, stated once for every producer and consumer.

Sidecar (what a game or recorder logs): a record at time t holds the action in force from t until the next
record -- the keys held down from t on. Its effect shows in the frames that come after t.

Stores and models (frames, latents, the world model, the evaluation, the toy data): `actions[t]` is the action
that LED INTO frame t, i.e. the one in force during the interval (t-1, t] between output frames. Frame 0 has no
such action (`has_actions[0]` is False). A world model generating frame t is conditioned on `actions[t]`, so
the action that causes a change sits on the very frame that shows it.

Moves are screen directions: 0 = still, 1..8 = E, NE, N, NW, W, SW, S, SE (y down on screen). With the camera
locked on the player, the map scrolls opposite to the move.
"""
from __future__ import annotations

import math

import numpy as np

# An actions sidecar sits beside its video as `<stem><suffix>` (JSON or JSON Lines); the `videos` stage keeps it
# beside the fetched video under the matching name of FETCHED_SIDECARS.
SIDECAR_SUFFIXES = (".actions.json", ".actions.jsonl")
FETCHED_SIDECARS = tuple("actions" + s.removeprefix(".actions") for s in SIDECAR_SUFFIXES)


def fetched_sidecar_name(sidecar_name: str) -> str:
    """`run1.actions.jsonl` -> `actions.jsonl`."""
    return next(f for s, f in zip(SIDECAR_SUFFIXES, FETCHED_SIDECARS) if sidecar_name.endswith(s))

# Unit screen vectors (x right, y down) of moves 1..8.
MOVE_UNIT = {k: (math.cos((k - 1) * math.pi / 4), -math.sin((k - 1) * math.pi / 4)) for k in range(1, 9)}


def actions_leading_into(times: np.ndarray, values: np.ndarray, num_frames: int, fps: float,
                         until: float = float("inf")) -> tuple[np.ndarray, np.ndarray]:
    """Per output frame k (time k/fps): the sidecar record in force at the previous frame's time (k-1)/fps,
    i.e. the action that led from frame k-1 into frame k. Records are in force until `until` (seconds); later
    frames are unlabelled. Returns (actions int16 (T, C), has_actions (T,))."""
    t_prev = (np.arange(num_frames, dtype=np.float64) - 1) / fps
    idx = np.searchsorted(times, t_prev + 1e-9, side="right") - 1  # 1e-9: float noise in written times
    has = (idx >= 0) & (np.arange(num_frames) > 0) & (t_prev < until - 1e-9)
    out = np.zeros((num_frames, values.shape[1]), np.int16)
    out[has] = values[idx[has]]
    return out, has


def has_move_component(components, num_classes) -> bool:
    """Whether an action space's first component is the 8-direction move above (what action agreement reads)."""
    return bool(components) and components[0] == "move" and list(num_classes)[:1] == [9]
