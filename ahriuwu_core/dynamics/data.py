"""Latent windows for dynamics training, read from the tokenizer's latent stores (zarr v3 groups:
`latents` float16 (T,N,D), `actions` int16 (T,C), `has_actions` bool (T,)).

Windows of `length` consecutive frames start every `stride` frames. Example `g` of optimizer step `step` is
a pure function of (seed, step, g) (`example_seed`): a resumed run draws exactly the batches it would have
drawn, and under data parallelism rank r takes the global examples [r*B, (r+1)*B), so W ranks with batch B
draw together exactly the examples one process draws with batch W*B. Unlabelled videos (no `actions` arrays
or has_actions all False) mix freely with labelled ones: every batch carries actions + has_actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import zarr

from ..data.checked_store import HashCheck, create_array, open_checked
from ..data.checked_store import read as read_checked


def example_seed(seed: int, step: int, index: int, stream: int) -> int:
    """A 64-bit seed for global example `index` of optimizer step `step`; `stream` separates independent uses
    (window choice, objective noise) of the same example."""
    return int(np.random.SeedSequence([seed, step, index, stream]).generate_state(1, np.uint64)[0])


WINDOW_STREAM, OBJECTIVE_STREAM = 0, 1


@dataclass
class LatentVideo:
    path: Path
    latents: object  # np.ndarray (in memory) or zarr array, (T,N,D) float16
    actions: np.ndarray  # (T,C) int16
    has_actions: np.ndarray  # (T,) bool
    action_space: tuple = ()  # classes per component (labelled videos)

    @property
    def num_frames(self) -> int:
        return int(self.latents.shape[0])

    @property
    def in_memory(self) -> bool:
        return isinstance(self.latents, np.ndarray)


def open_latent_video(path, in_memory: bool = True, max_bytes: int | None = None) -> LatentVideo:
    """A latent store's latents and its action labels as stored (no actions arrays: an unlabelled video).
    `in_memory` loads the latents whole, unless they take more than `max_bytes`: those are read window by window
    from zarr (each chunk still checksummed), so a long video never has to fit in RAM."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"latent store not found: {path}")
    group = open_checked(path, ("latents", "actions", "has_actions"))
    if "latents" not in group:
        raise ValueError(f"latent store {path} has no 'latents' array")
    lat = group["latents"]
    if lat.ndim != 3:
        raise ValueError(f"latent store {path}: 'latents' must be (T,N,D), got shape {lat.shape}")
    T = lat.shape[0]
    if "actions" in group and "has_actions" in group:
        actions = read_checked(path, group["actions"]).astype(np.int16)
        has = read_checked(path, group["has_actions"]).astype(bool)
        if actions.ndim != 2 or actions.shape[0] != T or has.shape != (T,):
            raise ValueError(
                f"latent store {path}: actions {actions.shape} / has_actions {has.shape} do not match {T} frames"
            )
    else:  # no action arrays: an unlabelled video
        actions, has = np.zeros((T, 0), np.int16), np.zeros(T, bool)
    classes = tuple(int(c) for c in group.attrs.get("action_num_classes", ()))
    if has.any() and classes and len(classes) != actions.shape[1]:
        raise ValueError(
            f"latent store {path}: {actions.shape[1]} action components stored, its action space "
            f"{list(classes)} has {len(classes)}"
        )
    data = lat
    if in_memory and (max_bytes is None or lat.nbytes <= max_bytes):
        # The whole store is read: verify it against its content_hash (the encode step's).
        data = read_checked(path, lat).astype(np.float16)
        check = HashCheck(path, group.attrs.get("content_hash"))
        check.update(data)
        check.verify()
    return LatentVideo(path, data, actions, has, classes if has.any() else ())


def common_action_space(videos: list["LatentVideo"], default: tuple) -> tuple[int, ...]:
    """The action space (classes per component) every labelled video shares; `default` when none is labelled.
    Two labelled videos with different spaces are an error naming both."""
    labelled = [v for v in videos if v.has_actions.any()]
    for v in labelled[1:]:
        if v.action_space != labelled[0].action_space or v.actions.shape[1] != labelled[0].actions.shape[1]:
            raise ValueError(
                f"latent stores disagree on the action space: {labelled[0].path} has "
                f"{list(labelled[0].action_space)}, {v.path} has {list(v.action_space)}"
            )
    if not labelled:
        return tuple(default)
    space = labelled[0].action_space or tuple(default)  # a store without a recorded space: the default's
    if len(space) != labelled[0].actions.shape[1]:
        raise ValueError(
            f"latent store {labelled[0].path}: {labelled[0].actions.shape[1]} action components and "
            f"no recorded action space (`action_num_classes`); the default {list(default)} does not fit"
        )
    for v in labelled:  # values outside the space are refused, never clamped
        bad = v.actions[v.has_actions] >= np.asarray(space)
        if bad.any():
            t, c = map(int, np.argwhere(bad)[0])
            frame = int(np.flatnonzero(v.has_actions)[t])
            raise ValueError(
                f"latent store {v.path}: frame {frame} action component {c} = "
                f"{int(v.actions[frame, c])} is outside the action space {list(space)}"
            )
    return tuple(space)


class LatentWindows:
    def __init__(
        self,
        stores,
        action_num_classes: tuple | None = None,
        stride: int = 4,
        rank: int = 0,
        world_size: int = 1,
        in_memory: bool = True,
        default_action_space: tuple = (9, 5),
        in_memory_max_bytes: int | None = None,
    ):
        """action_num_classes: the model's action space; None takes it from the labelled stores (their
        `action_num_classes`), or `default_action_space` when no store is labelled. `in_memory` loads each
        store whose latents take at most `in_memory_max_bytes` (None: any); the others are read from zarr."""
        if not stores:
            raise ValueError("LatentWindows: no latent stores given")
        self.videos = [open_latent_video(p, in_memory, in_memory_max_bytes) for p in stores]
        space = common_action_space(self.videos, default_action_space)
        if (
            action_num_classes is not None
            and tuple(action_num_classes) != space
            and any(v.has_actions.any() for v in self.videos)
        ):
            raise ValueError(
                f"the model's action space {list(action_num_classes)} does not match the data's "
                f"{list(space)} ({[str(v.path) for v in self.videos if v.has_actions.any()][0]})"
            )
        self.action_num_classes = tuple(action_num_classes) if action_num_classes is not None else space
        for v in self.videos:  # unlabelled videos carry no action: zeros of the model's width, has_actions False
            if not v.has_actions.any():
                v.actions = np.zeros((v.num_frames, len(self.action_num_classes)), np.int16)
        shapes = {tuple(v.latents.shape[1:]) for v in self.videos}
        if len(shapes) != 1:
            detail = ", ".join(f"{v.path}: {tuple(v.latents.shape[1:])}" for v in self.videos)
            raise ValueError(f"latent stores disagree on (N, D): {detail}")
        self.num_tokens, self.token_dim = shapes.pop()
        self.stride, self.rank, self.world_size = max(1, int(stride)), rank, world_size
        self._windows: dict[int, np.ndarray] = {}

    def windows(self, length: int) -> np.ndarray:
        """(W, 2) array of (video index, start frame): every window, on every rank (ranks split examples)."""
        if length not in self._windows:
            rows = [(i, s) for i, v in enumerate(self.videos) for s in range(0, v.num_frames - length + 1, self.stride)]
            if not rows:
                longest = max(v.num_frames for v in self.videos)
                raise ValueError(
                    f"latent stores {[str(v.path) for v in self.videos]}: no windows of "
                    f"{length} frames (longest video {longest} frames)"
                )
            self._windows[length] = np.asarray(rows, dtype=np.int64)
        return self._windows[length]

    def batch(self, batch_size: int, length: int, seed: int, step: int, device="cpu", first: int | None = None) -> dict:
        """Global examples [first, first + batch_size) of optimizer step `step` (first defaults to
        rank * batch_size: this rank's share of a global batch of batch_size * world_size).
        Returns latents float32 (B,T,N,D), actions long (B,T,C), has_actions (B,T)."""
        wins = self.windows(length)
        first = self.rank * batch_size if first is None else first
        pick = wins[
            [
                int(np.random.default_rng(example_seed(seed, step, g, WINDOW_STREAM)).integers(len(wins)))
                for g in range(first, first + batch_size)
            ]
        ]
        # read_checked: a window read from zarr names the store when a chunk is damaged
        lat = np.stack(
            [read_checked(self.videos[i].path, self.videos[i].latents, slice(s, s + length)) for i, s in pick]
        )
        act = np.stack([self.videos[i].actions[s : s + length] for i, s in pick])
        has = np.stack([self.videos[i].has_actions[s : s + length] for i, s in pick])
        return {
            "latents": torch.from_numpy(lat.astype(np.float32)).to(device),
            "actions": torch.from_numpy(act.astype(np.int64)).to(device),
            "has_actions": torch.from_numpy(has).to(device),
        }


def write_latent_store(
    path, latents: np.ndarray, actions: np.ndarray | None = None, has_actions: np.ndarray | None = None, **attrs
) -> Path:
    """Small helper (tests, benches): write a latent store in the contract layout (not atomic; the real
    stores come from the tokenizer's encode step)."""
    path = Path(path)
    group = zarr.open_group(str(path), mode="w")
    T = latents.shape[0]
    create_array(group, "latents", data=np.asarray(latents, np.float16), chunks=(min(32, T),) + latents.shape[1:])
    if actions is not None:
        create_array(group, "actions", data=np.asarray(actions, np.int16))
        create_array(
            group, "has_actions", data=np.asarray(has_actions if has_actions is not None else np.ones(T, bool), bool)
        )
    group.attrs.update({"num_frames": T, "tokens": latents.shape[1], "dim": latents.shape[2], **attrs})
    return path
