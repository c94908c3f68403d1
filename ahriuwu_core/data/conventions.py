"""Game-independent conventions: how actions line up with frames, the default action space, the HUD layouts.

The action convention, stated once for every producer and consumer:

Sidecar (what a game or recorder logs): a record at time t holds the action in force from t until the next
record -- the keys held down from t on. Its effect shows in the frames that come after t.

Stores and models (frames, latents, the world model, the evaluation, the toy data): `actions[t]` is the action
that LED INTO frame t, i.e. the one pressed during the interval [t-1, t) between output frames. Frame 0 has no
such action (`has_actions[0]` is False). A world model generating frame t is conditioned on `actions[t]`, so
the action that causes a change sits on the very frame that first shows it.

How the records in force during an interval combine, per component (class 0 = nothing pressed: still, no
ability, NOOP): a frame gets 0 only if 0 was in force during the whole interval; otherwise it gets the non-zero
class in force for the longest time within it (ties: the later one). So a key held through the interval keeps
its class, and an impulse (a cast logged for one source frame, a tap shorter than a frame) is kept unless a
longer (or equally long, later) press of another class fills the same interval.

Moves are screen directions: 0 = still, 1..8 = E, NE, N, NW, W, SW, S, SE (y down on screen). With the camera
locked on the player, the map scrolls opposite to the move.

HUD layouts: per game, boxes (x, y, w, h) in a reference pixel size; the frames stage scales them to each video
and masks them out of the losses and metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
_DIAG = 1 / math.sqrt(2)
MOVE_VECTORS = np.array(  # the same directions indexed by move 0..8, diagonals exactly 1/sqrt(2) (what a game moves by)
    [(0, 0), (1, 0), (_DIAG, -_DIAG), (0, -1), (-_DIAG, -_DIAG), (-1, 0), (-_DIAG, _DIAG), (0, 1), (_DIAG, _DIAG)],
    dtype=np.float64,
)


def move_from_vector(dx: float, dy: float) -> int:
    """The move (1..8) whose direction is closest to the screen vector (dx, dy); 0 for a zero vector."""
    if dx == 0 and dy == 0:
        return 0
    sector = int(round(math.atan2(-dy, dx) / (math.pi / 4))) % 8
    return sector + 1


# Seconds: slivers this short are float noise in written times (often rounded to microseconds), and durations
# this close are a tie.
_EPS = 2e-6


def actions_leading_into(
    times: np.ndarray, values: np.ndarray, num_frames: int, fps: float, until: float = float("inf")
) -> tuple[np.ndarray, np.ndarray]:
    """Per output frame k (time k/fps): the action that led into it, combined over the records in force during
    [(k-1)/fps, k/fps) by the rule in the module docstring. Records are in force until `until` (seconds); frames
    whose interval starts before the first record or at/after `until` are unlabelled, and so is frame 0.
    Returns (actions int16 (T, C), has_actions (T,))."""
    times = np.asarray(times, np.float64)
    values = np.asarray(values)
    out = np.zeros((num_frames, values.shape[1]), np.int16)
    has = np.zeros(num_frames, bool)
    if len(times) == 0:
        return out, has
    k = np.arange(1, num_frames)
    start, end = (k - 1) / fps, np.minimum(k / fps, until)
    labelled = (times[0] <= start + _EPS) & (start < until - _EPS)
    k, start, end = k[labelled], start[labelled], end[labelled]
    if len(k) == 0:
        return out, has
    # Cut every interval into segments, one per record in force during it (records first..last).
    first = np.searchsorted(times, start + _EPS, side="right") - 1
    last = np.maximum(np.searchsorted(times, end - _EPS, side="left") - 1, first)
    counts = last - first + 1
    seg = np.repeat(np.arange(len(k)), counts)  # each segment's interval
    rec = first[seg] + np.arange(len(seg)) - np.repeat(np.cumsum(counts) - counts, counts)  # and its record
    rec_end = np.append(times[1:], until)
    seg_start = np.maximum(times[rec], start[seg])
    seg_len = np.minimum(rec_end[rec], end[seg]) - seg_start
    for c in range(values.shape[1]):
        cls = values[rec, c].astype(np.int64)
        n = int(cls.max()) + 1
        if n == 1:  # nothing pressed in any labelled interval
            continue
        flat = seg * n + cls
        held = np.bincount(flat, weights=seg_len, minlength=len(k) * n).reshape(len(k), n)[:, 1:]
        latest = np.full(len(k) * n, -np.inf)
        np.maximum.at(latest, flat, seg_start)
        latest = latest.reshape(len(k), n)[:, 1:]
        # Non-zero classes only: the one held longest, ties to the later; 0 when none was pressed at all.
        pressed = np.isfinite(latest)
        longest = np.where(pressed, held, -np.inf).max(axis=1)
        best = np.argmax(np.where(pressed & (held >= longest[:, None] - _EPS), latest, -np.inf), axis=1) + 1
        out[k, c] = np.where(pressed.any(axis=1), best, 0)
    has[k] = True
    return out, has


def has_move_component(components, num_classes) -> bool:
    """Whether an action space's first component is the 8-direction move above (what action agreement reads)."""
    return bool(components) and components[0] == "move" and list(num_classes)[:1] == [9]


# The action space a store records when its video has no sidecar: the 8-way move (plus still) and 4 abilities.
DEFAULT_ACTION_COMPONENTS = ("move", "ability")
DEFAULT_ACTION_NUM_CLASSES = (9, 5)


@dataclass
class HudLayout:
    reference_size: tuple[int, int]  # (w, h) the boxes are given in
    boxes: dict[str, tuple[int, int, int, int]]  # name -> (x, y, w, h)


HUD_LAYOUTS = {
    "none": HudLayout((1920, 1080), {}),
    "demo": HudLayout((640, 360), {"minimap": (528, 248, 112, 112), "abilities_health": (192, 312, 256, 48)}),
    "replay": HudLayout(
        (1920, 1080),
        {
            "blue_team_panel": (0, 145, 100, 500),
            "red_team_panel": (1820, 145, 100, 500),
            "channel_watermark": (0, 958, 300, 122),
            "player_hud": (0, 773, 310, 185),
            "scorecard": (600, 847, 740, 233),
            "objective_timers": (1340, 980, 270, 100),
            "minimap": (1650, 810, 270, 270),
            "top_scoreboard": (385, 0, 1150, 100),
        },
    ),
    "live": HudLayout((1920, 1080), {}),  # not mapped yet
}
