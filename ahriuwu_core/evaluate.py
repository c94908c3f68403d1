"""Held-out evaluation: rollouts against baselines, action controllability, pictures, a report.

Protocol (see README): split by video (`split_videos`); each held-out clip is C context frames then H frames
predicted autoregressively, sampled with K=4 and K=64 shortcut steps, with the context noise at its training
value and at 0. Per horizon: PSNR / SSIM / LPIPS in pixel space outside the HUD mask, plus latent MSE.
Baselines on the same frames: persistence (the ground-truth last context frame, in pixels) and the
tokenizer ceiling decode(encode(gt)). A dream is only worth something where it beats persistence.

    python -m ahriuwu_core.evaluate --tokenizer T.pt --dynamics D.pt --frames a.zarr b.zarr --out DIR
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ahriuwu_core import metrics as M
from ahriuwu_core import report as R
from ahriuwu_core.conventions import MOVE_UNIT, has_move_component
from ahriuwu_core.dynamics.model import shift_previous
from ahriuwu_core.files import write_text
from ahriuwu_core.motion import constant_velocity_rollout, estimate_shift, motion_weights
from ahriuwu_core.tokenizer.encode import encode_frames

# ------------------------------------------------------------------------------------------ config


@dataclass
class EvalConfig:
    context: int = 16                      # C ground-truth context frames
    horizon: int = 16                      # H frames predicted autoregressively
    sampling_steps: tuple[int, ...] = (4, 64)
    context_noise: float | None = None     # None = the dynamics checkpoint's training value
    also_zero_context_noise: bool = True   # additionally roll out with context noise 0
    zero_noise_steps: tuple[int, ...] | None = None  # K values for the noise-0 variant (None = all of sampling_steps)
    clips_per_video: int = 2
    seed: int = 0
    strip_horizons: tuple[int, ...] = (1, 4, 8, 16)
    gif: bool = True
    lpips_net: str | None = "alex"         # None skips LPIPS (values reported as null)
    action_agreement: bool = True          # videos whose first action component is an 8-way move: does the view
                                           # scroll against it?
    mean_readout: bool = True              # also roll out the conditional mean (model_k<K>_mean, K the first steps)
    many_steps_clips_per_video: int = 0    # > 0: variants with more steps than the first (K=64) score only the
                                           # first N clips of each video (they cost K/4 times as much)
    bootstrap_resamples: int = 2000        # for the 95% intervals of the per-clip margin over persistence
    quick_eval: bool = True
    batch_size: int = 8                    # clips per rollout batch

    def __post_init__(self):
        self.sampling_steps = tuple(int(k) for k in self.sampling_steps)
        self.strip_horizons = tuple(int(h) for h in self.strip_horizons)
        if self.zero_noise_steps is not None:
            self.zero_noise_steps = tuple(int(k) for k in self.zero_noise_steps)
        if self.context < 1 or self.horizon < 1:
            raise ValueError(f"EvalConfig: context and horizon must be >= 1 (got {self.context}, {self.horizon})")
        if not self.sampling_steps:
            raise ValueError("EvalConfig.sampling_steps is empty")


def variant_name(steps: int, zero_noise: bool) -> str:
    return f"model_k{steps}" + ("_noise0" if zero_noise else "")


# ------------------------------------------------------------------------------------------- data


@dataclass
class Clips:
    video_id: str
    frames: np.ndarray       # uint8 (B, C+H, H, W, 3)
    actions: np.ndarray      # int64 (B, C+H, n_components)
    has_actions: np.ndarray  # bool (B, C+H)
    hud_mask: np.ndarray | None  # uint8 (H, W), 1 = HUD
    starts: list[int]
    action_components: tuple = ()
    action_num_classes: tuple = ()


class VideoTooShort(ValueError):
    """A held-out video has fewer frames than context + horizon (it is skipped, and named in the report)."""


def clip_starts(num_frames: int, length: int, count: int) -> list[int]:
    """Evenly spaced clip starts covering the video: deterministic, no RNG, independent of other videos."""
    if num_frames < length:
        return []
    last = num_frames - length
    if count <= 1:
        return [last // 2]
    return sorted({round(i * last / (count - 1)) for i in range(count)})


def read_clips(store: Path, cfg: EvalConfig) -> Clips:
    from ahriuwu_core.frames import open_frames

    store = Path(store)
    group = open_frames(store, require=("frames", "actions", "has_actions"))
    video_id = str(group.attrs.get("video_id", store.stem))
    frames = group["frames"]
    length = cfg.context + cfg.horizon
    starts = clip_starts(frames.shape[0], length, cfg.clips_per_video)
    if not starts:
        raise VideoTooShort(f"video {video_id} ({store}) has {frames.shape[0]} frames, fewer than "
                         f"context+horizon={length}")
    actions, has_actions = group["actions"], group["has_actions"]
    hud = np.asarray(group["hud_mask"][...], dtype=np.uint8) if "hud_mask" in group else None
    return Clips(
        video_id=video_id,
        frames=np.stack([np.asarray(frames[s : s + length]) for s in starts]),
        actions=np.stack([np.asarray(actions[s : s + length]) for s in starts]).astype(np.int64),
        has_actions=np.stack([np.asarray(has_actions[s : s + length]) for s in starts]).astype(bool),
        hud_mask=hud,
        starts=starts,
        action_components=tuple(group.attrs.get("action_components", ())),
        action_num_classes=tuple(group.attrs.get("action_num_classes", ())),
    )


# -------------------------------------------------------------------------------------- model glue


def training_context_noise(dynamics_path: Path) -> float | None:
    """The context noise the dynamics checkpoint was trained with (its `extra.train_config`, which the trainer
    writes into dynamics.pt); None for a checkpoint without one (e.g. a resume checkpoint)."""
    from ahriuwu_core.training import read_checkpoint

    train_config = (read_checkpoint(dynamics_path).get("extra") or {}).get("train_config") or {}
    value = train_config.get("context_noise")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def shuffled_actions(actions: torch.Tensor, context: int, seed: int) -> torch.Tensor:
    """Permute the horizon's action rows across time and clips with a seeded permutation (context untouched).
    When some rows differ the permutation is redrawn until it changes the sequence (up to 10 tries)."""
    B, T, C = actions.shape
    future = actions[:, context:].reshape(B * (T - context), C)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(future.shape[0], generator=gen)
    for _ in range(10):
        if not torch.equal(future[perm], future) or bool((future == future[0]).all()):
            break
        perm = torch.randperm(future.shape[0], generator=gen)
    out = actions.clone()
    out[:, context:] = future[perm].reshape(B, T - context, C)
    return out


def scroll_agreement(frames: np.ndarray, moves: np.ndarray, estimate_scroll, max_angle_deg: float = 45.0):
    """Fraction of moving steps where the map scrolls opposite the commanded move.

    frames uint8 (T, H, W, 3); moves (T,) move class per frame (`conventions`: moves[t] led into frame t).
    Step t compares frames t-1 -> t with moves[t]. The camera is locked on the player, so content moves by
    -move.
    Returns (agreements, counted_steps)."""
    agree, counted = 0, 0
    cos_tol = math.cos(math.radians(max_angle_deg))
    for t in range(1, frames.shape[0]):
        move = int(moves[t])
        if move not in MOVE_UNIT:
            continue
        counted += 1
        dx, dy = estimate_scroll(frames[t - 1], frames[t])
        norm = math.hypot(dx, dy)
        if norm < 1e-6:
            continue  # no motion predicted: the action was not followed
        ux, uy = MOVE_UNIT[move]
        if (-ux * dx - uy * dy) / norm >= cos_tol:
            agree += 1
    return agree, counted


# --------------------------------------------------------------------------------------- evaluation


def _to_device_frames(frames_u8: np.ndarray, device) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float (B, T, 3, H, W) in [0, 1]."""
    return torch.from_numpy(frames_u8).to(device).permute(0, 1, 4, 2, 3).float() / 255.0


def _to_uint8(frames: torch.Tensor) -> np.ndarray:
    """float (B, T, 3, H, W) in [0, 1] -> uint8 (B, T, H, W, 3)."""
    return (frames.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 1, 3, 4, 2).cpu().numpy()


class _Accumulator:
    """Collects per-clip, per-horizon values (B, H) for each metric/series, then averages over clips."""

    def __init__(self):
        self.values: dict[str, dict[str, list[np.ndarray]]] = {}

    def add(self, metric: str, series: str, values):
        self.values.setdefault(metric, {}).setdefault(series, []).append(np.asarray(values, dtype=np.float64))

    def per_clip(self, metric: str, series: str) -> np.ndarray:
        """(clips, H): every clip in the order added (the same order for every series)."""
        return np.concatenate(self.values[metric][series], axis=0)

    def per_horizon(self, metric: str, series: str) -> list[float] | None:
        parts = self.values.get(metric, {}).get(series)
        if not parts:
            return None
        return [float(v) for v in np.concatenate(parts, axis=0).mean(axis=0)]


def _image_metrics(acc, series, pred_u8, gt_u8, mask, cfg, device):
    acc.add("psnr", series, M.psnr(pred_u8, gt_u8, mask))
    acc.add("ssim", series, M.ssim(pred_u8, gt_u8, mask))
    if cfg.lpips_net:
        acc.add("lpips", series, M.lpips_distance(pred_u8, gt_u8, mask, net=cfg.lpips_net, device=device))


def evaluate(tokenizer_path, dynamics_path, heldout_stores, cfg: EvalConfig, out_dir, lineage: dict | None = None,
             device="cpu", log: Callable[[str], None] = print, estimate_motion=None) -> dict:
    """Load both checkpoints and run `evaluate_models`. See its docstring for outputs."""
    load_tokenizer, load_world_model, rollout = _model_loaders()

    t0 = time.perf_counter()
    tokenizer = load_tokenizer(tokenizer_path, device=device)
    world_model = load_world_model(dynamics_path, device=device)
    train_noise = training_context_noise(dynamics_path)
    load_s = time.perf_counter() - t0
    lineage = dict(lineage or {})
    lineage.setdefault("tokenizer_checkpoint", str(tokenizer_path))
    lineage.setdefault("dynamics_checkpoint", str(dynamics_path))
    result = evaluate_models(tokenizer, world_model, rollout, heldout_stores, cfg, out_dir, lineage=lineage,
                             train_context_noise=train_noise, device=device, log=log,
                             timings={"load_models": round(load_s, 3)}, estimate_motion=estimate_motion)
    return result


def _model_loaders():
    from ahriuwu_core.dynamics import rollout
    from ahriuwu_core.dynamics.train import load_world_model
    from ahriuwu_core.tokenizer import load_tokenizer

    return load_tokenizer, load_world_model, rollout


def usable_steps(requested, k_max: int | None) -> tuple[int, ...]:
    """Sampling-step counts the model was trained for: K > k_max is clamped to k_max (the finest trained step),
    duplicates dropped, order kept."""
    out = []
    for k in requested:
        k = min(int(k), int(k_max)) if k_max else int(k)
        if k not in out:
            out.append(k)
    return tuple(out)


def evaluate_models(tokenizer, world_model, rollout_fn, heldout_stores, cfg: EvalConfig, out_dir,
                    lineage: dict | None = None, train_context_noise: float | None = None, device="cpu",
                    log: Callable[[str], None] = print, timings: dict | None = None, estimate_motion=None) -> dict:
    """Evaluate loaded models on the held-out frames stores.

    `estimate_motion(frame_a, frame_b) -> (dx, dy)` measures global scroll for the `persistence_motion`
    baseline and for action agreement; default: `motion.estimate_shift` with each video's HUD faded out.

    Writes out_dir/{report.md, metrics.json, psnr_vs_horizon.png, strip_<video>.png, rollout_<video>.gif}.
    Returns {"metrics": <metrics.json content>, "flat": {stable_key: float}, "report_path", "metrics_path",
    "plot_path", "strip_paths", "gif_paths", "strip_png": small PNG bytes, "plot_png": small PNG bytes}."""
    from ahriuwu_core.training import autocast_context

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    if not heldout_stores:
        raise ValueError("evaluate: no held-out frames stores given")
    noise = cfg.context_noise if cfg.context_noise is not None else train_context_noise
    if noise is None:
        noise = 0.1
        log("evaluate: the dynamics checkpoint records no training context_noise; using 0.1")
    k_max = getattr(getattr(world_model, "cfg", None), "k_max", None)
    steps = usable_steps(cfg.sampling_steps, k_max)
    if steps != cfg.sampling_steps:
        log(f"evaluate: sampling steps {cfg.sampling_steps} -> {steps} (the model's finest step is 1/{k_max})")
    cfg = dataclasses.replace(cfg, sampling_steps=steps,
                              zero_noise_steps=usable_steps(cfg.zero_noise_steps or steps, k_max))
    variants = [(k, False) for k in cfg.sampling_steps]
    if cfg.also_zero_context_noise and noise != 0.0:
        variants += [(k, True) for k in cfg.zero_noise_steps]
    primary = variant_name(cfg.sampling_steps[0], False)
    C, H = cfg.context, cfg.horizon
    horizons = list(range(1, H + 1))
    acc = _Accumulator()
    timings: dict[str, float] = dict(timings or {})
    quick_psnr, agreement, gt_agreement, videos, strip_paths, gif_paths = [], [0, 0], [0, 0], [], [], []
    start_all = time.perf_counter()

    def tick(name, t):
        timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - t, 3)

    t = time.perf_counter()
    all_clips, skipped = [], []
    for store in heldout_stores:
        try:
            all_clips.append(read_clips(store, cfg))
        except VideoTooShort as exc:
            log(f"evaluate: skipping {exc}")
            skipped.append(Path(store).stem)
    if not all_clips:
        raise ValueError(f"evaluate: every held-out video is shorter than context+horizon={C + H} frames: "
                         + ", ".join(skipped))
    shapes = {c.frames.shape[2:] for c in all_clips}
    if len(shapes) > 1:
        raise ValueError(f"held-out videos have different frame sizes {sorted(shapes)}: "
                         + ", ".join(f"{c.video_id} {c.frames.shape[2:]}" for c in all_clips))
    videos = [c.video_id for c in all_clips]
    model_space = tuple(getattr(getattr(world_model, "cfg", None), "action_num_classes", ()) or ())
    for c in all_clips:  # the model's action space is the checkpoint's; each video must speak it or be unlabelled
        if not c.has_actions.any():
            c.actions = np.zeros(c.actions.shape[:2] + (len(model_space) or c.actions.shape[2],), np.int64)
        elif model_space and (c.actions.shape[2] != len(model_space) or
                              (c.action_num_classes and tuple(c.action_num_classes) != model_space)):
            raise ValueError(f"held-out video {c.video_id}: action space {list(c.action_num_classes)} "
                             f"({c.actions.shape[2]} components), the world model's is {list(model_space)}")
    motion_fns = [estimate_motion or _hud_faded_estimator(c.hud_mask, c.frames.shape[2:4]) for c in all_clips]
    mean_name = f"model_k{cfg.sampling_steps[0]}_mean" if cfg.mean_readout else None
    tick("read_frames", t)
    for c in all_clips:
        log(f"evaluate: {c.video_id}: {len(c.starts)} clip(s) at frames {c.starts}")
    # Clips of all videos are batched together: per-forward overhead dominates small CPU rollouts.
    items = [(v, i) for v, c in enumerate(all_clips) for i in range(len(c.starts))]
    for b0 in range(0, len(items), cfg.batch_size):
        batch = items[b0 : b0 + cfg.batch_size]
        gt_u8 = np.stack([all_clips[v].frames[i] for v, i in batch])
        actions_np = np.stack([all_clips[v].actions[i] for v, i in batch])
        has_actions_np = np.stack([all_clips[v].has_actions[i] for v, i in batch])
        gt = _to_device_frames(gt_u8, device)
        actions = torch.from_numpy(actions_np).to(device)
        has_actions = torch.from_numpy(has_actions_np).to(device)
        future_u8 = gt_u8[:, C:]
        with torch.no_grad(), autocast_context(device):
            t = time.perf_counter()
            try:
                latents = encode_frames(tokenizer, gt)
                ceiling_u8 = _to_uint8(tokenizer.decode(latents[:, C:]))
            except Exception as exc:
                raise ValueError(f"tokenizer cannot encode/decode frames of videos "
                                 f"{sorted({videos[v] for v, _ in batch})}, shape {tuple(gt.shape)}: {exc}") from exc
            tick("tokenizer", t)
            if cfg.quick_eval:
                t = time.perf_counter()
                quick_psnr.append(quick_latent_psnr(world_model, latents, actions, has_actions, cfg.seed))
                tick("quick_eval", t)
            preds_u8, ran_rows = {}, {}  # ran_rows[name]: (batch,) bool, the clips that variant was rolled out on
            clip_index = np.array([i for _, i in batch])
            for steps, zero in variants:
                name = variant_name(steps, zero)
                t = time.perf_counter()
                few = cfg.many_steps_clips_per_video if steps > cfg.sampling_steps[0] else 0
                ran_rows[name] = clip_index < few if few else np.ones(len(batch), bool)
                sub = np.flatnonzero(ran_rows[name])
                gen = torch.Generator(device=device).manual_seed(cfg.seed)
                pred_lat = rollout_fn(world_model, latents[sub, :C], actions[sub], has_actions[sub], H,
                                      sampling_steps=steps, context_noise=0.0 if zero else noise,
                                      generator=gen).float()
                preds_u8[name] = np.zeros_like(future_u8)
                preds_u8[name][sub] = _to_uint8(tokenizer.decode(pred_lat))
                tick(f"rollout_{name}", t)
                acc.add("latent_mse", name, M.latent_mse(pred_lat, latents[sub, C:]))
            if mean_name:
                t = time.perf_counter()
                gen = torch.Generator(device=device).manual_seed(cfg.seed)
                pred_lat = rollout_fn(world_model, latents[:, :C], actions, has_actions, H,
                                      sampling_steps=cfg.sampling_steps[0], context_noise=noise, generator=gen,
                                      mean=True).float()
                preds_u8[mean_name] = _to_uint8(tokenizer.decode(pred_lat))
                ran_rows[mean_name] = np.ones(len(batch), bool)
                tick(f"rollout_{mean_name}", t)
            acc.add("latent_mse", "persistence",
                    M.latent_mse(latents[:, C - 1 : C].expand(-1, H, -1, -1), latents[:, C:]))
            shuffled_u8 = None
            acting = has_actions_np[:, C:].any(axis=1)  # the gap is measured over clips that carry actions
            if acting.any():
                t = time.perf_counter()
                gen = torch.Generator(device=device).manual_seed(cfg.seed)
                pred_lat = rollout_fn(world_model, latents[:, :C], shuffled_actions(actions, C, cfg.seed),
                                      has_actions, H, sampling_steps=cfg.sampling_steps[0],
                                      context_noise=noise, generator=gen).float()
                shuffled_u8 = _to_uint8(tokenizer.decode(pred_lat))
                tick("rollout_shuffled_actions", t)
        persistence_u8 = np.repeat(gt_u8[:, C - 1 : C], H, axis=1)
        t = time.perf_counter()
        motion_u8 = np.stack([constant_velocity_rollout(gt_u8[k, C - 2], gt_u8[k, C - 1], H, motion_fns[v])
                              if C >= 2 else persistence_u8[k] for k, (v, _) in enumerate(batch)])
        tick("persistence_motion", t)
        for v in sorted({v for v, _ in batch}):  # metrics per video: each has its own HUD mask
            rows = np.array([k for k, (vv, _) in enumerate(batch) if vv == v])
            clips = all_clips[v]
            mask = clips.hud_mask
            t = time.perf_counter()
            _image_metrics(acc, "persistence", persistence_u8[rows], future_u8[rows], mask, cfg, device)
            _image_metrics(acc, "persistence_motion", motion_u8[rows], future_u8[rows], mask, cfg, device)
            _image_metrics(acc, "tokenizer_ceiling", ceiling_u8[rows], future_u8[rows], mask, cfg, device)
            for name, pred_u8 in preds_u8.items():
                ran = rows[ran_rows[name][rows]]
                if len(ran):
                    _image_metrics(acc, name, pred_u8[ran], future_u8[ran], mask, cfg, device)
                if len(ran) < len(rows) and len(ran):  # the first variant on the same clips, for a fair comparison
                    acc.add("psnr", f"{primary}@{name}", M.psnr(preds_u8[primary][ran], future_u8[ran], mask))
            act_rows = rows[acting[rows]]
            if shuffled_u8 is not None and len(act_rows):
                acc.add("psnr", "true_actions", M.psnr(preds_u8[primary][act_rows], future_u8[act_rows], mask))
                acc.add("psnr", "shuffled_actions", M.psnr(shuffled_u8[act_rows], future_u8[act_rows], mask))
            tick("metrics", t)
            if cfg.action_agreement and has_move_component(clips.action_components, clips.action_num_classes):
                t = time.perf_counter()
                for k in act_rows:
                    moves = actions_np[k, C - 1 :, 0]
                    a, n = scroll_agreement(np.concatenate([gt_u8[k, C - 1 : C], preds_u8[primary][k]]),
                                            moves, motion_fns[v])
                    agreement[0] += a
                    agreement[1] += n
                    a, n = scroll_agreement(gt_u8[k, C - 1 :], moves, motion_fns[v])
                    gt_agreement[0] += a
                    gt_agreement[1] += n
                tick("action_agreement", t)
            first = [k for k in rows if batch[k][1] == 0]
            if first:  # pictures of the first clip of every video
                k = first[0]
                t = time.perf_counter()
                strip_paths.append(_write_strip(out_dir, clips.video_id, gt_u8[k], ceiling_u8[k],
                                                {n: p[k : k + 1] for n, p in preds_u8.items()}, cfg))
                if cfg.gif:
                    gif_paths.append(R.write_gif(gt_u8[k], preds_u8[primary][k], C,
                                                 out_dir / f"rollout_{clips.video_id}.gif"))
                tick("pictures", t)
    timings["total"] = round(time.perf_counter() - start_all, 3)

    metrics = _assemble_metrics(acc, cfg, horizons, videos, variants, noise, quick_psnr, agreement, gt_agreement,
                                timings, mean_name)
    metrics["skipped_videos"] = skipped
    plot_series = {k: metrics["psnr"][k] for k in metrics["psnr"] if k in
                   (variant_name(s, False) for s in cfg.sampling_steps) or k in ("persistence", "tokenizer_ceiling")}
    plot = R.line_plot(horizons, plot_series, "PSNR vs horizon (held-out, outside HUD)", "horizon (frames)",
                       "PSNR (dB)")
    plot_path = R.atomic_save(plot, out_dir / "psnr_vs_horizon.png")
    metrics_path = write_text(out_dir / "metrics.json", json.dumps(metrics, indent=1))
    report_path = write_text(out_dir / "report.md", render_report(metrics, cfg, lineage or {}, plot_path,
                                                                          strip_paths, gif_paths))
    from PIL import Image

    log(f"evaluate: {len(videos)} video(s) in {timings['total']:.1f}s; PSNR h=1 {primary} "
        f"{metrics['psnr'][primary][0]:.2f} dB vs persistence {metrics['psnr']['persistence'][0]:.2f} dB; "
        f"report {report_path}")
    return {
        "metrics": metrics,
        "flat": flat_metrics(metrics, cfg.strip_horizons),
        "report_path": report_path,
        "metrics_path": metrics_path,
        "plot_path": plot_path,
        "strip_paths": strip_paths,
        "gif_paths": gif_paths,
        "strip_png": R.small_png_bytes(Image.open(strip_paths[0])),
        "plot_png": R.small_png_bytes(plot),
    }


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
    pred = world_model.unstandardize(world_model(noisy, tau, tau.clone(), actions, has_actions,
                                                 previous=shift_previous(clean)))
    return float(np.mean(M.latent_psnr(pred, latents)))


@torch.no_grad()
def quick_eval_latents(world_model, latents_stores, window: int = 16, windows_per_video: int = 2, seed: int = 0,
                       device="cpu") -> float:
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


def _hud_faded_estimator(hud_mask, size):
    """The default motion estimate for a video: phase correlation with its HUD faded out."""
    weights = motion_weights(size[0], size[1], hud_mask)
    return lambda a, b: estimate_shift(a, b, weights)


def _write_strip(out_dir: Path, video_id: str, gt_clip_u8: np.ndarray, ceiling_u8: np.ndarray, preds_u8: dict,
                 cfg: EvalConfig) -> Path:
    """Rows: ground truth, tokenizer reconstruction (the ceiling), one per sampling-steps variant; columns: the
    last context frame (ground truth in every row), then the chosen horizons."""
    C = cfg.context
    hs = [h for h in cfg.strip_horizons if 1 <= h <= cfg.horizon] or [cfg.horizon]
    rows = {"ground truth": np.stack([gt_clip_u8[C - 1]] + [gt_clip_u8[C + h - 1] for h in hs]),
            "tokenizer recon": np.stack([gt_clip_u8[C - 1]] + [ceiling_u8[h - 1] for h in hs])}
    for name, pred in preds_u8.items():
        if name.endswith("_noise0"):
            continue
        rows[name.replace("model_", "model ")] = np.stack([gt_clip_u8[C - 1]] + [pred[0, h - 1] for h in hs])
    labels = ["last context"] + [f"h={h}" for h in hs]
    strip = R.make_strip(rows, labels, title=f"{video_id}: ground truth vs prediction")
    return R.atomic_save(strip, out_dir / f"strip_{video_id}.png")


def _assemble_metrics(acc, cfg, horizons, videos, variants, noise, quick_psnr, agreement, gt_agreement, timings,
                      mean_name=None):
    main = [variant_name(k, False) for k in cfg.sampling_steps]
    extra = [variant_name(k, True) for k, z in variants if z] + ([mean_name] if mean_name else [])
    names = main + ["persistence", "tokenizer_ceiling", "persistence_motion"] + extra
    out = {"horizons": horizons}
    for metric in ("psnr", "ssim", "lpips"):
        out[metric] = {n: acc.per_horizon(metric, n) if (metric != "lpips" or cfg.lpips_net) else None
                       for n in names}
    persistence = acc.per_clip("psnr", "persistence")
    out["clips"] = int(persistence.shape[0])
    out["clips_per_series"] = {n: int(acc.per_clip("psnr", n).shape[0]) for n in names if n in acc.values["psnr"]}
    # Variants scored on fewer clips, with the first variant on exactly those clips (check_few_steps_close).
    out["psnr_same_clips"] = {n: {"clips": out["clips_per_series"][n], main[0]: acc.per_horizon("psnr", f"{main[0]}@{n}"),
                                  n: acc.per_horizon("psnr", n)}
                              for n in names if f"{main[0]}@{n}" in acc.values["psnr"]}
    out["psnr_margin_ci95_low"], out["psnr_margin_ci95_high"] = {}, {}
    full = [n for n in main + ["persistence_motion"] + extra if out["clips_per_series"].get(n) == out["clips"]]
    for n in full:  # per-clip margin over persistence, resampled by clip
        low, high = M.bootstrap_mean_ci(acc.per_clip("psnr", n) - persistence, resamples=cfg.bootstrap_resamples,
                                        seed=cfg.seed)
        out["psnr_margin_ci95_low"][n], out["psnr_margin_ci95_high"][n] = low.tolist(), high.tolist()
    true_psnr, shuf_psnr = acc.per_horizon("psnr", "true_actions"), acc.per_horizon("psnr", "shuffled_actions")
    out["action_gap_db"] = [a - b for a, b in zip(true_psnr, shuf_psnr)] if true_psnr else []
    out["videos"] = videos
    out["latent_mse"] = {n: acc.per_horizon("latent_mse", n) for n in main + extra + ["persistence"]}
    out["context_noise"] = {"train": noise, "variants": {variant_name(k, z): (0.0 if z else noise)
                                                         for k, z in variants}}
    out["quick_eval_latent_psnr"] = float(np.mean(quick_psnr)) if quick_psnr else None
    out["action_gap_available"] = bool(true_psnr)
    out["action_agreement"] = agreement[0] / agreement[1] if agreement[1] else None
    out["action_agreement_ground_truth"] = gt_agreement[0] / gt_agreement[1] if gt_agreement[1] else None
    out["action_agreement_steps"] = agreement[1]
    out["config"] = _jsonable(dataclasses.asdict(cfg))
    out["timings_s"] = timings
    return out


def flat_metrics(metrics: dict, horizons=(1, 4, 8, 16)) -> dict[str, float]:
    """Stable scalar keys for Dagster's Plots tab, e.g. psnr_h1_model_k4, lpips_h16_persistence,
    psnr_margin_ci95_low_h8_model_k4, action_gap_db_h1. PSNR for every series; SSIM, LPIPS and the margin
    interval for the first model variant and the baselines it must beat (the full set is in metrics.json).
    Only finite numbers are included."""
    flat = {}
    hs = metrics["horizons"]
    primary = next(iter(metrics["psnr"]))
    keep = {"psnr": None, "ssim": {primary, "persistence", "persistence_motion"},
            "lpips": {primary, "persistence", "persistence_motion"}, "latent_mse": {primary, "persistence"},
            "psnr_margin_ci95_low": {primary}, "psnr_margin_ci95_high": {primary}}
    for metric, series_kept in keep.items():
        for series, values in (metrics.get(metric) or {}).items():
            if values is None or (series_kept is not None and series not in series_kept):
                continue
            for h in horizons:
                if h in hs:
                    flat[f"{metric}_h{h}_{series}"] = values[hs.index(h)]
            if not metric.startswith("psnr_margin"):
                flat[f"{metric}_mean_{series}"] = float(np.mean(values))
    flat["clips"] = metrics.get("clips")
    for h in horizons:
        if h in hs and metrics.get("action_gap_db"):
            flat[f"action_gap_db_h{h}"] = metrics["action_gap_db"][hs.index(h)]
    for key in ("quick_eval_latent_psnr", "action_agreement", "action_agreement_ground_truth"):
        flat[key] = metrics.get(key)
    flat["eval_seconds"] = metrics.get("timings_s", {}).get("total")
    return {k: float(v) for k, v in flat.items() if M.is_finite_number(v)}


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


# ------------------------------------------------------------------------------------------- report


def series_label(metrics: dict, name: str) -> str:
    """A series' name, with its clip count when it covers fewer clips than the evaluation (K=64 on a subset)."""
    n, clips = (metrics.get("clips_per_series") or {}).get(name), metrics.get("clips")
    return f"{name} ({n} clips)" if n is not None and n != clips else name


def render_report(metrics: dict, cfg: EvalConfig, lineage: dict, plot_path: Path, strip_paths, gif_paths) -> str:
    hs = metrics["horizons"]
    lines = ["# Held-out evaluation", ""]
    lines += ["Pictures first: automated metrics have rated a poisoned model above a clean one before. A dream "
              "is only worth something where it beats persistence (copying the last frame).", ""]
    for p in strip_paths:
        lines.append(f"![{Path(p).stem}]({Path(p).name})")
    for p in gif_paths:
        lines.append(f"![{Path(p).stem}]({Path(p).name})")
    lines += ["", f"![PSNR vs horizon]({Path(plot_path).name})", ""]
    for metric, label in (("psnr", "PSNR (dB, higher is better)"), ("ssim", "SSIM (higher is better)"),
                          ("lpips", "LPIPS (lower is better)")):
        series = {k: v for k, v in metrics[metric].items() if v is not None}
        if not series:
            continue
        lines += [f"## {label}, outside the HUD mask", ""]
        rows = [[h] + [series[k][i] for k in series] for i, h in enumerate(hs)]
        header = ["horizon"] + [series_label(metrics, k) for k in series]
        if metric == "psnr" and metrics["action_gap_db"]:
            rows = [r + [metrics["action_gap_db"][i]] for i, r in enumerate(rows)]
            lines.append(R.markdown_table(header + ["action gap (dB)"], rows))
        else:
            lines.append(R.markdown_table(header, rows))
        lines.append("")
    lows, highs = metrics.get("psnr_margin_ci95_low") or {}, metrics.get("psnr_margin_ci95_high") or {}
    if lows:
        lines += [f"## PSNR margin over persistence (dB), mean and 95% bootstrap interval over {metrics['clips']} "
                  "clips", ""]
        cells = [[h] + [f"{metrics['psnr'][n][i] - metrics['psnr']['persistence'][i]:+.2f} "
                        f"[{lows[n][i]:+.2f}, {highs[n][i]:+.2f}]" for n in lows] for i, h in enumerate(hs)]
        lines += [R.markdown_table(["horizon"] + list(lows), cells), ""]
    lines += ["## Latent MSE per horizon", ""]
    lat = {k: v for k, v in metrics["latent_mse"].items() if v is not None}
    lines += [R.markdown_table(["horizon"] + list(lat), [[h] + [lat[k][i] for k in lat] for i, h in enumerate(hs)]), ""]
    lines += ["## Summary", ""]
    summary = [
        ["quick eval latent PSNR (tau=0.5, one step)", metrics["quick_eval_latent_psnr"]],
        ["action agreement (predicted scroll vs action)", metrics["action_agreement"]],
        ["action agreement on ground truth (reference)", metrics["action_agreement_ground_truth"]],
        ["context noise (training value)", metrics["context_noise"]["train"]],
        ["held-out videos", ", ".join(metrics["videos"])],
        ["skipped (shorter than context + horizon)", ", ".join(metrics.get("skipped_videos", [])) or "none"],
    ]
    lines += [R.markdown_table(["what", "value"], summary), ""]
    lines += ["## Checks", ""]
    rows = []
    for name, (passed, details) in run_checks(metrics).items():
        rows.append([name, "pass" if passed else "FAIL", json.dumps(details, default=str)[:200]])
    lines += [R.markdown_table(["check", "result", "details"], rows), ""]
    lines += ["## Timings (s)", "", R.markdown_table(["phase", "seconds"], list(metrics["timings_s"].items())), ""]
    lines += ["## Config", "", "```json", json.dumps(metrics["config"], indent=1), "```", ""]
    lines += ["## Lineage", "", "```json", json.dumps(_jsonable(lineage), indent=1, default=str), "```", ""]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------- checks


def check_beats_persistence(metrics: dict, horizon: int = 1, series: str | None = None) -> tuple[bool, dict]:
    """The model beats copy-last-frame at `horizon` (default: the first sampling-steps variant): the lower end of
    the 95% bootstrap interval of its per-clip PSNR margin over persistence is above 0."""
    series = series or next(iter(metrics["psnr"]))
    i = metrics["horizons"].index(horizon)
    model, persist = metrics["psnr"][series][i], metrics["psnr"]["persistence"][i]
    low = (metrics.get("psnr_margin_ci95_low") or {}).get(series)
    high = (metrics.get("psnr_margin_ci95_high") or {}).get(series)
    low, high = (low[i], high[i]) if low and high else (None, None)
    finite = M.is_finite_number(model) and M.is_finite_number(persist) and M.is_finite_number(low)
    return finite and low > 0, {
        "horizon": horizon, "series": series, "model_psnr": model, "persistence_psnr": persist,
        "margin_db": model - persist if finite else None, "margin_ci95_low": low, "margin_ci95_high": high,
        "clips": metrics.get("clips")}


def check_few_steps_close(metrics: dict, fast: str | None = None, slow: str | None = None,
                          tolerance_db: float = 0.5) -> tuple[bool, dict]:
    """K=4 is within `tolerance_db` of K=64 at every horizon, on the same clips (`psnr_same_clips` when K=64 was
    scored on a subset). Defaults: the fewest and the most sampling steps evaluated (config.sampling_steps)."""
    steps = sorted(metrics["config"]["sampling_steps"])
    fast = fast or variant_name(steps[0], False)
    slow = slow or variant_name(steps[-1], False)
    same = (metrics.get("psnr_same_clips") or {}).get(slow)
    a, b = (same[fast], same[slow]) if same else (metrics["psnr"].get(fast), metrics["psnr"].get(slow))
    if a is None or b is None:
        return False, {"reason": f"missing series {fast if a is None else slow}"}
    diffs = [y - x for x, y in zip(a, b)]
    worst = float(np.max(np.abs(diffs)))
    passed = math.isfinite(worst) and worst <= tolerance_db
    return passed, {"fast": fast, "slow": slow, "mean_diff_db": float(np.mean(diffs)), "max_abs_diff_db": worst,
                    "tolerance_db": tolerance_db, "clips": same["clips"] if same else metrics.get("clips")}


def check_no_nan(metrics: dict) -> tuple[bool, dict]:
    """No NaN or infinity anywhere in the metrics (None means 'not measured' and is allowed)."""
    bad = []

    def walk(obj, path):
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(v, f"{path}[{i}]")
        elif isinstance(obj, float) and not math.isfinite(obj):
            bad.append(path)

    walk({k: v for k, v in metrics.items() if k != "config"}, "")
    return not bad, {"non_finite": bad[:20], "count": len(bad)}


def run_checks(metrics: dict) -> dict[str, tuple[bool, dict]]:
    checks = {"beats_persistence_h1": check_beats_persistence(metrics, 1), "no_nan": check_no_nan(metrics)}
    steps = sorted(metrics["config"]["sampling_steps"])
    if len(steps) > 1:
        checks[f"k{steps[0]}_within_0.5db_of_k{steps[-1]}"] = check_few_steps_close(metrics)
    return checks


# ----------------------------------------------------------------------------------------------- CLI


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ahriuwu_core.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--tokenizer", required=True, type=Path, help="tokenizer checkpoint (.pt)")
    p.add_argument("--dynamics", required=True, type=Path, help="dynamics checkpoint (.pt)")
    p.add_argument("--frames", required=True, nargs="+", type=Path, help="held-out frames stores (.zarr)")
    p.add_argument("--out", required=True, type=Path, help="report folder")
    d = EvalConfig()
    p.add_argument("--context", type=int, default=d.context)
    p.add_argument("--horizon", type=int, default=d.horizon)
    p.add_argument("--steps", type=int, nargs="+", default=list(d.sampling_steps), help="sampling steps K values")
    p.add_argument("--context-noise", type=float, default=None, help="default: the checkpoint's training value")
    p.add_argument("--no-zero-noise", action="store_true", help="skip the context-noise-0 variant")
    p.add_argument("--clips-per-video", type=int, default=d.clips_per_video)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--strip-horizons", type=int, nargs="+", default=list(d.strip_horizons))
    p.add_argument("--no-gif", action="store_true")
    p.add_argument("--lpips-net", default=d.lpips_net, help="'alex', 'vgg' or 'none'")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--lineage", type=str, default=None, help="JSON dict (or @file.json) recorded in the report")
    args = p.parse_args(argv)
    lineage = None
    if args.lineage:
        text = Path(args.lineage[1:]).read_text() if args.lineage.startswith("@") else args.lineage
        lineage = json.loads(text)
    cfg = EvalConfig(context=args.context, horizon=args.horizon, sampling_steps=tuple(args.steps),
                     context_noise=args.context_noise, also_zero_context_noise=not args.no_zero_noise,
                     clips_per_video=args.clips_per_video, seed=args.seed, strip_horizons=tuple(args.strip_horizons),
                     gif=not args.no_gif, lpips_net=None if args.lpips_net.lower() == "none" else args.lpips_net)
    result = evaluate(args.tokenizer, args.dynamics, args.frames, cfg, args.out, lineage=lineage, device=args.device)
    checks = run_checks(result["metrics"])
    for name, (passed, details) in checks.items():
        print(f"check {name}: {'pass' if passed else 'FAIL'} {json.dumps(details, default=str)}")
    print(f"report: {result['report_path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
