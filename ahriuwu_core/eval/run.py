"""Run an evaluation: load the checkpoints, read the held-out clips, roll out, score, write the report."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ahriuwu_core.dynamics import rollout
from ahriuwu_core.dynamics.train import load_dynamics
from ahriuwu_core.eval import action_control, report, rollouts, scoring
from ahriuwu_core.eval.config import EvalConfig, resolve_plan, variant_name
from ahriuwu_core.report import small_png_bytes
from ahriuwu_core.tokenizer import load_tokenizer


def evaluate(tokenizer_path, dynamics_path, heldout_stores, cfg: EvalConfig, out_dir, lineage: dict | None = None,
             device="cpu", log: Callable[[str], None] = print, estimate_motion=None) -> dict:
    """Load both checkpoints and run `evaluate_models`. See its docstring for outputs."""
    t0 = time.perf_counter()
    tokenizer = load_tokenizer(tokenizer_path, device=device)
    world_model, trained = load_dynamics(dynamics_path, device=device)
    train_noise = trained.context_noise  # rollouts corrupt context exactly as training did
    load_s = time.perf_counter() - t0
    lineage = dict(lineage or {})
    lineage.setdefault("tokenizer_checkpoint", str(tokenizer_path))
    lineage.setdefault("dynamics_checkpoint", str(dynamics_path))
    result = evaluate_models(tokenizer, world_model, rollout, heldout_stores, cfg, out_dir, lineage=lineage,
                             train_context_noise=train_noise, device=device, log=log,
                             timings={"load_models": round(load_s, 3)}, estimate_motion=estimate_motion)
    return result


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
    plan = resolve_plan(cfg, world_model, train_context_noise, log)
    cfg = plan.cfg
    horizons = list(range(1, cfg.horizon + 1))
    acc = scoring.Accumulator()
    timer = rollouts.Timer(dict(timings or {}))
    quick_psnr, agreement, gt_agreement, strip_paths, gif_paths = [], [0, 0], [0, 0], [], []
    start_all = time.perf_counter()

    t = time.perf_counter()
    all_clips, skipped = rollouts.read_heldout(heldout_stores, cfg, world_model, log)
    videos = [c.video_id for c in all_clips]
    motion_fns = scoring.motion_estimators(all_clips, estimate_motion)
    timer.tick("read_frames", t)
    for c in all_clips:
        log(f"evaluate: {c.video_id}: {len(c.starts)} clip(s) at frames {c.starts}")
    for batch in rollouts.batch_items(all_clips, cfg.batch_size):
        with torch.no_grad(), autocast_context(device):
            br = rollouts.roll_out_batch(tokenizer, world_model, rollout_fn, all_clips, batch, plan, acc, timer,
                                         quick_psnr, device)
            shuffled_u8 = action_control.roll_out_shuffled(world_model, rollout_fn, tokenizer, br, plan, timer,
                                                           device)
        persistence_u8, motion_u8 = scoring.baselines(br, plan, motion_fns, timer)
        for v in sorted({v for v, _ in batch}):  # metrics per video: each has its own HUD mask
            rows = np.array([k for k, (vv, _) in enumerate(batch) if vv == v])
            clips = all_clips[v]
            t = time.perf_counter()
            scoring.score_video(acc, br, rows, clips.hud_mask, persistence_u8, motion_u8, plan, device)
            act_rows = action_control.score_action_gap(acc, br, rows, shuffled_u8, clips.hud_mask, plan)
            timer.tick("metrics", t)
            action_control.add_agreement(agreement, gt_agreement, br, act_rows, clips, plan, motion_fns[v], timer)
            report.write_pictures(out_dir, br, rows, clips.video_id, plan.primary, cfg, strip_paths, gif_paths,
                                  timer)
    timings = timer.timings
    timings["total"] = round(time.perf_counter() - start_all, 3)

    metrics = scoring.assemble_metrics(acc, plan, horizons, videos, quick_psnr,
                                       action_control.action_metrics(acc, agreement, gt_agreement), timings)
    metrics["skipped_videos"] = skipped
    plot_names = [variant_name(s, False) for s in cfg.sampling_steps] + ["persistence", "tokenizer_ceiling"]
    written = report.write_outputs(out_dir, metrics, cfg, horizons, lineage, strip_paths, gif_paths, plot_names)
    from PIL import Image

    primary = plan.primary
    log(f"evaluate: {len(videos)} video(s) in {timings['total']:.1f}s; PSNR h=1 {primary} "
        f"{metrics['psnr'][primary][0]:.2f} dB vs persistence {metrics['psnr']['persistence'][0]:.2f} dB; "
        f"report {written['report_path']}")
    return {
        "metrics": metrics,
        "flat": scoring.flat_metrics(metrics, cfg.strip_horizons),
        "report_path": written["report_path"],
        "metrics_path": written["metrics_path"],
        "plot_path": written["plot_path"],
        "strip_paths": strip_paths,
        "gif_paths": gif_paths,
        "strip_png": small_png_bytes(Image.open(strip_paths[0])),
        "plot_png": small_png_bytes(written["plot"]),
    }
