"""Evaluation clips and the model runs on them: reading clips from frames stores, and rolling out each
sampling-steps variant on a batch of clips (plus the one-step quick eval)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ahriuwu_core.dynamics.model import shift_previous
from ahriuwu_core.eval.config import EvalConfig, Plan, variant_name
from ahriuwu_core.images import metrics as M
from ahriuwu_core.tokenizer.encode import encode_frames

# ------------------------------------------------------------------------------------------- clips


@dataclass
class Clips:
    video_id: str
    frames: np.ndarray  # uint8 (B, C+H, H, W, 3)
    actions: np.ndarray  # int64 (B, C+H, n_components)
    has_actions: np.ndarray  # bool (B, C+H)
    hud_mask: np.ndarray | None  # uint8 (H, W), 1 = HUD
    starts: list[int]
    action_components: tuple = ()
    action_num_classes: tuple = ()
    camera: np.ndarray | None = None  # float (B, C+H, 2): the camera's position per frame in pixels, if known


class VideoTooShort(ValueError):
    """An evaluated video has fewer frames than context + horizon (it is skipped, and named in the report)."""


def clip_starts(num_frames: int, length: int, count: int) -> list[int]:
    """Evenly spaced clip starts covering the video: deterministic, no RNG, independent of other videos."""
    if num_frames < length:
        return []
    last = num_frames - length
    if count <= 1:
        return [last // 2]
    return sorted({round(i * last / (count - 1)) for i in range(count)})


def read_clips(store: Path, cfg: EvalConfig, camera_track=None) -> Clips:
    """The video's evenly spaced clips. camera_track(store) -> (T, 2) or None: the camera's position per frame
    (pixels), for a source that knows it (the scroll oracle baseline)."""
    from ahriuwu_core.data.frames import open_frames

    store = Path(store)
    group = open_frames(store, require=("frames", "actions", "has_actions"))
    video_id = str(group.attrs.get("video_id", store.stem))
    frames = group["frames"]
    length = cfg.context + cfg.horizon
    starts = clip_starts(frames.shape[0], length, cfg.clips_per_video)
    if not starts:
        raise VideoTooShort(
            f"video {video_id} ({store}) has {frames.shape[0]} frames, fewer than context+horizon={length}"
        )
    actions, has_actions = group["actions"], group["has_actions"]
    hud = np.asarray(group["hud_mask"][...], dtype=np.uint8) if "hud_mask" in group else None
    track = camera_track(store) if camera_track is not None else None
    return Clips(
        video_id=video_id,
        frames=np.stack([np.asarray(frames[s : s + length]) for s in starts]),
        actions=np.stack([np.asarray(actions[s : s + length]) for s in starts]).astype(np.int64),
        has_actions=np.stack([np.asarray(has_actions[s : s + length]) for s in starts]).astype(bool),
        hud_mask=hud,
        starts=starts,
        action_components=tuple(group.attrs.get("action_components", ())),
        action_num_classes=tuple(group.attrs.get("action_num_classes", ())),
        camera=None if track is None else np.stack([np.asarray(track[s : s + length], np.float64) for s in starts]),
    )


def read_videos(
    stores, cfg: EvalConfig, world_model, log: Callable[[str], None] = print, camera_track=None
) -> tuple[list[Clips], list[str]]:
    """Clips of every store long enough for context + horizon, in the world model's action space.
    Returns (clips per video, ids of the videos skipped as too short)."""
    all_clips, skipped = [], []
    for store in stores:
        try:
            all_clips.append(read_clips(store, cfg, camera_track))
        except VideoTooShort as exc:
            log(f"evaluate: skipping {exc}")
            skipped.append(Path(store).stem)
    if not all_clips:
        raise ValueError(
            f"evaluate: every video is shorter than context+horizon="
            f"{cfg.context + cfg.horizon} frames: " + ", ".join(skipped)
        )
    shapes = {c.frames.shape[2:] for c in all_clips}
    if len(shapes) > 1:
        raise ValueError(
            f"evaluated videos have different frame sizes {sorted(shapes)}: "
            + ", ".join(f"{c.video_id} {c.frames.shape[2:]}" for c in all_clips)
        )
    model_space = tuple(getattr(getattr(world_model, "cfg", None), "action_num_classes", ()) or ())
    for c in all_clips:  # the model's action space is the checkpoint's; each video must speak it or be unlabelled
        if not c.has_actions.any():
            c.actions = np.zeros(c.actions.shape[:2] + (len(model_space) or c.actions.shape[2],), np.int64)
        elif model_space and (
            c.actions.shape[2] != len(model_space)
            or (c.action_num_classes and tuple(c.action_num_classes) != model_space)
        ):
            raise ValueError(
                f"evaluated video {c.video_id}: action space {list(c.action_num_classes)} "
                f"({c.actions.shape[2]} components), the world model's is {list(model_space)}"
            )
    return all_clips, skipped


# -------------------------------------------------------------------------------------- model glue


def to_device_frames(frames_u8: np.ndarray, device) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float (B, T, 3, H, W) in [0, 1]."""
    return torch.from_numpy(frames_u8).to(device).permute(0, 1, 4, 2, 3).float() / 255.0


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """float (B, T, 3, H, W) in [0, 1] -> uint8 (B, T, H, W, 3)."""
    return (frames.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 1, 3, 4, 2).cpu().numpy()


class Timer:
    """Accumulates seconds per phase into `timings` (rounded to ms), in the order phases first run."""

    def __init__(self, timings: dict[str, float]):
        self.timings = timings

    def tick(self, name: str, t: float) -> None:
        self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - t, 3)


# ------------------------------------------------------------------------------------------ rollouts


@dataclass
class BatchRollout:
    """One batch of clips (possibly from several videos) and what the models made of it."""

    items: list[tuple[int, int]]  # (video index, clip index) per row
    gt_u8: np.ndarray  # uint8 (B, C+H, H, W, 3)
    actions_np: np.ndarray  # int64 (B, C+H, n_components)
    has_actions_np: np.ndarray  # bool (B, C+H)
    future_u8: np.ndarray  # the ground truth of the horizon, (B, H, H, W, 3)
    latents: torch.Tensor  # the tokenizer's latents of every frame
    actions: torch.Tensor
    has_actions: torch.Tensor
    ceiling_u8: np.ndarray  # decode(encode(future)): the tokenizer ceiling
    preds_u8: dict[str, np.ndarray]  # series -> (B, H, H, W, 3); rows a variant skipped stay zero
    ran_rows: dict[str, np.ndarray]  # series -> (B,) bool, the clips that variant was rolled out on


def batch_items(all_clips: list[Clips], batch_size: int):
    """Clips of all videos batched together: per-forward overhead dominates small CPU rollouts."""
    items = [(v, i) for v, c in enumerate(all_clips) for i in range(len(c.starts))]
    for b0 in range(0, len(items), batch_size):
        yield items[b0 : b0 + batch_size]


def roll_out_batch(
    tokenizer,
    world_model,
    rollout_fn,
    all_clips: list[Clips],
    batch,
    plan: Plan,
    acc,
    timer: Timer,
    quick_psnr: list,
    device,
) -> BatchRollout:
    """Encode the batch, run the quick eval, roll out every variant (and the conditional mean), and add latent
    MSE per series to `acc`. Call under no_grad and the autocast context."""
    cfg, C, H, noise = plan.cfg, plan.cfg.context, plan.cfg.horizon, plan.noise
    gt_u8 = np.stack([all_clips[v].frames[i] for v, i in batch])
    actions_np = np.stack([all_clips[v].actions[i] for v, i in batch])
    has_actions_np = np.stack([all_clips[v].has_actions[i] for v, i in batch])
    gt = to_device_frames(gt_u8, device)
    actions = torch.from_numpy(actions_np).to(device)
    has_actions = torch.from_numpy(has_actions_np).to(device)
    future_u8 = gt_u8[:, C:]
    t = time.perf_counter()
    try:
        latents = encode_frames(tokenizer, gt)
        ceiling_u8 = to_uint8(tokenizer.decode(latents[:, C:]))
    except Exception as exc:
        raise ValueError(
            f"tokenizer cannot encode/decode frames of videos "
            f"{sorted({all_clips[v].video_id for v, _ in batch})}, shape {tuple(gt.shape)}: {exc}"
        ) from exc
    timer.tick("tokenizer", t)
    if cfg.quick_eval:
        t = time.perf_counter()
        quick_psnr.append(quick_latent_psnr(world_model, latents, actions, has_actions, cfg.seed))
        timer.tick("quick_eval", t)
    preds_u8, ran_rows = {}, {}
    clip_index = np.array([i for _, i in batch])
    for steps, zero in plan.variants:
        name = variant_name(steps, zero)
        t = time.perf_counter()
        few = cfg.many_steps_clips_per_video if steps > cfg.sampling_steps[0] else 0
        ran_rows[name] = clip_index < few if few else np.ones(len(batch), bool)
        sub = np.flatnonzero(ran_rows[name])
        gen = torch.Generator(device=device).manual_seed(cfg.seed)
        pred_lat = rollout_fn(
            world_model,
            latents[sub, :C],
            actions[sub],
            has_actions[sub],
            H,
            sampling_steps=steps,
            context_noise=0.0 if zero else noise,
            generator=gen,
        ).float()
        preds_u8[name] = np.zeros_like(future_u8)
        preds_u8[name][sub] = to_uint8(tokenizer.decode(pred_lat))
        timer.tick(f"rollout_{name}", t)
        acc.add("latent_mse", name, M.latent_mse(pred_lat, latents[sub, C:]))
    if plan.mean_name:
        t = time.perf_counter()
        gen = torch.Generator(device=device).manual_seed(cfg.seed)
        pred_lat = rollout_fn(
            world_model,
            latents[:, :C],
            actions,
            has_actions,
            H,
            sampling_steps=cfg.sampling_steps[0],
            context_noise=noise,
            generator=gen,
            mean=True,
        ).float()
        preds_u8[plan.mean_name] = to_uint8(tokenizer.decode(pred_lat))
        ran_rows[plan.mean_name] = np.ones(len(batch), bool)
        timer.tick(f"rollout_{plan.mean_name}", t)
    acc.add("latent_mse", "persistence", M.latent_mse(latents[:, C - 1 : C].expand(-1, H, -1, -1), latents[:, C:]))
    return BatchRollout(
        items=batch,
        gt_u8=gt_u8,
        actions_np=actions_np,
        has_actions_np=has_actions_np,
        future_u8=future_u8,
        latents=latents,
        actions=actions,
        has_actions=has_actions,
        ceiling_u8=ceiling_u8,
        preds_u8=preds_u8,
        ran_rows=ran_rows,
    )


# ---------------------------------------------------------------------------------------- quick eval


@torch.no_grad()
def quick_latent_psnr(world_model, latents, actions, has_actions, seed: int = 0) -> float:
    """Quick eval: noise every frame of the clip to tau=0.5, take one step of d=0.5 (straight to clean) in a
    single forward pass, and measure the latent PSNR of the x-prediction (range [-1, 1])."""
    gen = torch.Generator(device=latents.device).manual_seed(seed + 1)
    noise = torch.randn(latents.shape, generator=gen, device=latents.device)
    B, T = latents.shape[:2]
    tau = torch.full((B, T), 0.5, device=latents.device)
    clean = world_model.standardize(latents)
    noisy = 0.5 * noise + 0.5 * clean
    pred = world_model.unstandardize(
        world_model(noisy, tau, tau.clone(), actions, has_actions, previous=shift_previous(clean))
    )
    return float(np.mean(M.latent_psnr(pred, latents)))


@torch.no_grad()
def quick_eval_latents(
    world_model, latents_stores, window: int = 16, windows_per_video: int = 2, seed: int = 0, device="cpu"
) -> float:
    """Quick eval on latents stores (no tokenizer, no rollout): mean one-step latent PSNR from tau=0.5 over
    evenly spaced windows of `window` frames. Cheap enough to run after every dynamics training."""
    import zarr

    values = []
    for store in latents_stores:
        group = zarr.open_group(str(store), mode="r")
        if "latents" not in group:
            raise ValueError(f"latents store {store} has no 'latents' array")
        n = group["latents"].shape[0]
        length = min(window, n)
        for s in clip_starts(n, length, windows_per_video):
            lat = torch.from_numpy(np.asarray(group["latents"][s : s + length], dtype=np.float32))[None].to(device)
            act = torch.from_numpy(np.asarray(group["actions"][s : s + length]).astype(np.int64))[None].to(device)
            has = torch.from_numpy(np.asarray(group["has_actions"][s : s + length]).astype(bool))[None].to(device)
            values.append(quick_latent_psnr(world_model, lat, act, has, seed))
    if not values:
        raise ValueError("quick_eval_latents: no latents stores given")
    return float(np.mean(values))
