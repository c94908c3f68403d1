"""Interactive play: a world model dreams one frame per tick, driven by the player's action or by a recorded one.

A `PlayWorld` holds what every session shares: the tokenizer and world model (loaded once, on one device), the
action space read from the dynamics checkpoint, and the held-out clips a dream can start from. A `PlaySession`
is one player's dream: it starts from a clip's ground-truth context, then each `step` generates the next frame
with one KV-cached pass per sampling step (`dynamics.sampler.Dreamer`), with the context noise the model was
trained with and a sliding window of the longest sequence it was trained on, and decodes it through the
tokenizer. In replay mode the clip's recorded actions drive the dream and the ground truth comes alongside.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.conventions import has_move_component


@dataclass
class PlayConfig:
    context: int = 16  # ground-truth frames a dream starts from
    clips_per_video: int = 4  # selectable start points per held-out video
    sampling_steps: int = 4  # the default; a session may pick any power of two up to the model's k_max
    max_sessions: int = 4  # open tabs served at once; the next one is refused until one closes
    record_max_frames: int = 1200  # a recording keeps at most this many frames (a minute at 20 fps)
    max_messages_per_second: int = 120  # more is a flood: answered with an error and dropped
    seed: int = 0


@dataclass
class Clip:
    video_id: str
    store: Path
    start: int  # first context frame
    num_frames: int  # frames in the video

    @property
    def label(self) -> str:
        return f"{self.video_id} @ frame {self.start}"


class ActionError(ValueError):
    """An action the checkpoint's action space does not hold."""


class PlayWorld:
    """Models, action space and clips shared by every session."""

    def __init__(
        self,
        tokenizer,
        world_model,
        stores,
        cfg: PlayConfig | None = None,
        context_noise: float = 0.1,
        window: int | None = None,
        device="cpu",
    ):
        cfg = cfg or PlayConfig()
        from ..data.frames import open_frames

        self.tokenizer, self.model, self.cfg = tokenizer, world_model, cfg
        self.device = torch.device(device)
        self.context_noise = float(context_noise)
        # the longest sequence seen in training is window + 1 frames (the frame being generated)
        self.window = int(window if window is not None else world_model.cfg.max_frames - 1)
        self.num_classes = tuple(int(c) for c in world_model.cfg.action_num_classes)
        self.lock = threading.Lock()  # one model call at a time: concurrent sessions would only fight for cores
        self.clips: list[Clip] = []
        self._groups = {}
        names, fps = None, None
        from ..eval.rollouts import clip_starts

        for store in stores:
            store = Path(store)
            group = open_frames(store, require=("frames", "actions", "has_actions"))
            n = group["frames"].shape[0]
            video_id = str(group.attrs.get("video_id", store.stem))
            if n <= cfg.context:
                raise ValueError(
                    f"play: video {video_id} ({store}) has {n} frames, need more than context={cfg.context}"
                )
            stored = tuple(int(c) for c in group.attrs.get("action_num_classes", ()))
            if stored and stored != self.num_classes:
                raise ValueError(
                    f"play: video {video_id} ({store}) has action space {list(stored)}, the dynamics "
                    f"checkpoint {list(self.num_classes)}"
                )
            names = names or tuple(group.attrs.get("action_components", ()))
            fps = fps or float(group.attrs.get("fps", 20.0))
            self._groups[store] = group
            # starts leave room to replay at least a few seconds of recorded actions
            for s in clip_starts(n, min(n, cfg.context + max(1, int(5 * (fps or 20)))), cfg.clips_per_video):
                self.clips.append(Clip(video_id, store, s, n))
        if not self.clips:
            raise ValueError("play: no frames stores given")
        if names is None or len(names) != len(self.num_classes):
            names = tuple(f"component_{i}" for i in range(len(self.num_classes)))
        self.components = names
        self.fps = fps or 20.0
        self.image_size = tuple(self._groups[self.clips[0].store]["frames"].shape[1:3])

    @property
    def move_keys(self) -> bool:
        """Whether the space is the demo's (8-way move + abilities): the page maps arrows / WASD and 1-4."""
        return has_move_component(self.components, self.num_classes)

    def describe(self) -> dict:
        return {
            "components": list(self.components),
            "num_classes": list(self.num_classes),
            "move_keys": self.move_keys,
            "fps": self.fps,
            "size": list(self.image_size),
            "clips": [c.label for c in self.clips],
            "context": self.cfg.context,
            "window": self.window,
            "context_noise": self.context_noise,
            "k_max": int(self.model.cfg.k_max),
            "steps_choices": [k for k in (1, 2, 4) if k <= self.model.cfg.k_max],
            "sampling_steps": self.cfg.sampling_steps,
        }

    def validate_action(self, action) -> tuple[int, ...]:
        if not isinstance(action, (list, tuple)) or len(action) != len(self.num_classes):
            raise ActionError(
                f"action must be a list of {len(self.num_classes)} integers "
                f"({', '.join(self.components)}), got {action!r}"
            )
        out = []
        for name, n, a in zip(self.components, self.num_classes, action):
            if isinstance(a, bool) or not isinstance(a, int):
                raise ActionError(f"action component {name!r} must be an integer, got {a!r}")
            if not 0 <= a < n:
                raise ActionError(f"action component {name!r} = {a} is outside its {n} classes (0..{n - 1})")
            out.append(a)
        return tuple(out)

    def read(self, clip: Clip, t0: int, t1: int):
        """Frames uint8 (T,H,W,3), actions int64 (T,C), has_actions bool (T,) of frames [t0, t1) of a clip."""
        g = self._groups[clip.store]
        return (
            np.asarray(g["frames"][t0:t1]),
            np.asarray(g["actions"][t0:t1]).astype(np.int64),
            np.asarray(g["has_actions"][t0:t1]).astype(bool),
        )

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """(1,1,N,D) latents -> uint8 (H,W,3)."""
        from ..training.precision import autocast_context

        with autocast_context(self.device):
            x = self.tokenizer.decode(latents)
        return (x[0, 0].float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


class PlaySession:
    """One player's dream. Not thread-safe on its own: one caller at a time (the server's per-session loop)."""

    def __init__(self, world: PlayWorld, seed: int | None = None):
        self.world = world
        self.generator = torch.Generator(device="cpu").manual_seed(world.cfg.seed if seed is None else seed)
        self.sampling_steps = world.cfg.sampling_steps
        self.action = tuple(0 for _ in world.num_classes)  # class 0 of every component: no key held
        self.mode = "dream"
        self.clip: Clip | None = None
        self.recording: list[np.ndarray] | None = None
        self.frame_index = 0
        self.ended = False

    def set_steps(self, k) -> None:
        from ..dynamics.sampler import _check_steps

        if isinstance(k, bool) or not isinstance(k, int):
            raise ValueError(f"sampling steps must be an integer, got {k!r}")
        _check_steps(self.world.model, k)
        self.sampling_steps = k

    def set_action(self, action) -> None:
        self.action = self.world.validate_action(action)

    def reset(self, clip_index: int = 0, mode: str = "dream") -> np.ndarray:
        """Start a dream from clip `clip_index`'s ground-truth context. Returns the last context frame."""
        from ..dynamics.sampler import Dreamer
        from ..tokenizer.encode import encode_frames

        w = self.world
        if isinstance(clip_index, bool) or not isinstance(clip_index, int) or not 0 <= clip_index < len(w.clips):
            raise ValueError(f"clip must be an integer in [0, {len(w.clips) - 1}], got {clip_index!r}")
        if mode not in ("dream", "replay"):
            raise ValueError(f"mode must be 'dream' or 'replay', got {mode!r}")
        clip = w.clips[clip_index]
        C = w.cfg.context
        frames, actions, has = w.read(clip, clip.start, clip.start + C)
        x = torch.from_numpy(frames).to(w.device).permute(0, 3, 1, 2).float()[None] / 255.0
        with w.lock:
            ctx = encode_frames(w.tokenizer, x)
            self.dreamer = Dreamer(w.model, w.context_noise, self.generator, window=w.window)
            self.dreamer.start(
                ctx, torch.from_numpy(actions)[None].to(w.device), torch.from_numpy(has)[None].to(w.device)
            )
        self.clip, self.mode = clip, mode
        self.next_frame = clip.start + C  # the video frame the next dream frame stands for
        self.frame_index, self.ended = 0, False
        self.last_context = frames[-1]
        if self.recording is not None:
            self.recording = []
        return frames[-1]

    def step(self) -> dict:
        """Dream the next frame. Returns {"frame": uint8 (H,W,3), "truth": uint8 or None (replay), "action",
        "latency_ms", "index", "ended"}; `ended` (replay past the video's last frame) dreams nothing."""
        w = self.world
        if self.clip is None:
            raise RuntimeError("PlaySession.step before reset")
        truth = None
        if self.mode == "replay":
            if self.next_frame >= self.clip.num_frames:
                self.ended = True
                return {"ended": True, "index": self.frame_index}
            truth, act, has = w.read(self.clip, self.next_frame, self.next_frame + 1)
            truth, action, labelled = truth[0], tuple(int(a) for a in act[0]), bool(has[0])
        else:
            action, labelled = self.action, True
        t0 = time.perf_counter()
        a = torch.tensor([[list(action)]], dtype=torch.long, device=w.device)
        h = torch.tensor([[labelled]], dtype=torch.bool, device=w.device)
        with w.lock:
            latents = self.dreamer.step(a, h, self.sampling_steps)
            frame = w.decode(latents)
        latency = (time.perf_counter() - t0) * 1000.0
        self.next_frame += 1
        self.frame_index += 1
        if self.recording is not None:
            self.recording.append(frame if truth is None else np.concatenate([frame, truth], 1))
            del self.recording[: -w.cfg.record_max_frames]
        return {
            "frame": frame,
            "truth": truth,
            "action": list(action),
            "labelled": labelled,
            "latency_ms": latency,
            "index": self.frame_index,
            "ended": False,
        }

    def cached_frames(self) -> int:
        """Frames held in the world model's KV cache (bounded by the window)."""
        cache = getattr(getattr(self, "dreamer", None), "cache", None)
        return max((cache.kept(i) for i in cache.layers), default=0) if cache is not None else 0

    def start_recording(self) -> None:
        self.recording = []

    def stop_recording(self) -> list[np.ndarray]:
        frames, self.recording = self.recording or [], None
        return frames


def load_world(tokenizer_path, dynamics_path, stores, cfg: PlayConfig | None = None, device="cpu") -> PlayWorld:
    """Load a tokenizer / dynamics checkpoint pair onto `device` and open the frames stores to start from."""
    cfg = cfg or PlayConfig()
    from ..dynamics.load import load_dynamics
    from ..tokenizer import load_tokenizer

    for path in (tokenizer_path, dynamics_path):
        if not Path(path).exists():
            raise FileNotFoundError(f"play: checkpoint not found: {path}")
    tokenizer = load_tokenizer(tokenizer_path, device=device)
    model, trained = load_dynamics(dynamics_path, device=device)
    # The cache keeps what the model saw in training: its longest sequence, less the frame being generated.
    window = max(trained.seq_len, trained.long_seq_len) - 1
    return PlayWorld(
        tokenizer,
        model,
        stores,
        cfg,
        context_noise=trained.context_noise,
        window=window if window > 0 else None,
        device=device,
    )
