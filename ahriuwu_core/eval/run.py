"""Run an evaluation: load the checkpoints, read each split's clips, roll out, score, write the report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ahriuwu_core.dynamics import rollout
from ahriuwu_core.dynamics.load import load_dynamics
from ahriuwu_core.eval import action_control, baselines, report, rollouts, scoring
from ahriuwu_core.eval.config import EvalConfig, Plan, resolve_plan, split_plan, variant_name
from ahriuwu_core.images.pictures import small_png_bytes
from ahriuwu_core.tokenizer.build import load_tokenizer

EVAL_SPLITS = ("test", "validation")  # what an evaluation scores, in the order it reports them


def evaluate(
    tokenizer_path,
    dynamics_path,
    stores: dict,
    cfg: EvalConfig,
    out_dir,
    lineage: dict | None = None,
    device="cpu",
    log: Callable[[str], None] = print,
    estimate_motion=None,
    camera_track=None,
) -> dict:
    """Load both checkpoints and run `evaluate_models`. See its docstring for outputs."""
    t0 = time.perf_counter()
    tokenizer = load_tokenizer(tokenizer_path, device=device)
    world_model, trained = load_dynamics(dynamics_path, device=device)
    train_noise = trained.context_noise  # rollouts corrupt context exactly as training did
    load_s = time.perf_counter() - t0
    lineage = dict(lineage or {})
    lineage.setdefault("tokenizer_checkpoint", str(tokenizer_path))
    lineage.setdefault("dynamics_checkpoint", str(dynamics_path))
    return evaluate_models(
        tokenizer,
        world_model,
        rollout,
        stores,
        cfg,
        out_dir,
        lineage=lineage,
        train_context_noise=train_noise,
        device=device,
        log=log,
        timings={"load_models": round(load_s, 3)},
        estimate_motion=estimate_motion,
        camera_track=camera_track,
    )


def evaluate_models(
    tokenizer,
    world_model,
    rollout_fn,
    stores: dict,
    cfg: EvalConfig,
    out_dir,
    lineage: dict | None = None,
    train_context_noise: float | None = None,
    device="cpu",
    log: Callable[[str], None] = print,
    timings: dict | None = None,
    estimate_motion=None,
    camera_track=None,
) -> dict:
    """Evaluate loaded models on frames stores by split: `stores` maps "test" and/or "validation" to a list of
    stores. Each split is scored on its own (its own clips, baselines and intervals); test comes first.

    `estimate_motion(frame_a, frame_b) -> (dx, dy)` measures global scroll for the `persistence_motion`
    baseline and for action agreement; default: `motion.estimate_shift` with each video's HUD faded out.
    `camera_track(store) -> (T, 2) | None`: the true camera position per frame, where the source knows it (the
    `scroll_oracle` baseline).

    Writes out_dir/{report.md, metrics.json, psnr_vs_horizon_<split>.png, strip_<video>.png, rollout_<video>.gif}.
    Returns {"metrics": <metrics.json content>, "flat": {stable_key: float}, "report_path", "metrics_path",
    "plot_paths" and "plot_pngs" (small PNG bytes) by split, "strip_paths", "gif_paths", "strip_png": the first
    test video's strip as small PNG bytes}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    unknown = sorted(set(stores) - set(EVAL_SPLITS))
    if unknown:
        raise ValueError(f"evaluate: unknown split(s) {unknown}; expected {list(EVAL_SPLITS)}")
    splits = [s for s in EVAL_SPLITS if stores.get(s)]
    if not splits:
        raise ValueError("evaluate: no frames stores given for any split")
    plan = resolve_plan(cfg, world_model, train_context_noise, log)
    timer = rollouts.Timer(dict(timings or {}))
    start_all = time.perf_counter()
    sections, pictures = {}, {}
    for split in splits:
        sections[split], pictures[split] = evaluate_split(
            split,
            tokenizer,
            world_model,
            rollout_fn,
            stores[split],
            split_plan(plan, split),
            out_dir,
            device,
            log,
            timer,
            estimate_motion,
            camera_track,
        )
    timings = timer.timings
    timings["total"] = round(time.perf_counter() - start_all, 3)

    metrics = scoring.assemble_metrics(sections, plan, timings)
    plot_names = [variant_name(s, False) for s in plan.cfg.sampling_steps] + [
        b for b in scoring.BASELINES if b != "persistence_motion"
    ]
    written = report.write_outputs(out_dir, metrics, lineage, pictures, plot_names)
    from PIL import Image

    primary, first = plan.primary, metrics[splits[0]]
    counts = ", ".join(f"{len(metrics[s]['videos'])} {s}" for s in splits)
    log(
        f"evaluate: {counts} video(s) in "
        f"{timings['total']:.1f}s; {splits[0]} PSNR h=1 {primary} {first['psnr'][primary][0]:.2f} dB vs "
        f"persistence {first['psnr']['persistence'][0]:.2f} dB; report {written['report_path']}"
    )
    strip_paths = [p for s in splits for p in pictures[s]["strips"]]
    return {
        "metrics": metrics,
        "flat": scoring.flat_metrics(metrics, plan.cfg.strip_horizons),
        "report_path": written["report_path"],
        "metrics_path": written["metrics_path"],
        "plot_paths": written["plot_paths"],
        "plot_pngs": {s: small_png_bytes(img) for s, img in written["plots"].items()},
        "strip_paths": strip_paths,
        "gif_paths": [p for s in splits for p in pictures[s]["gifs"]],
        "strip_png": small_png_bytes(Image.open(strip_paths[0])),
    }


def evaluate_split(
    split: str,
    tokenizer,
    world_model,
    rollout_fn,
    stores,
    plan: Plan,
    out_dir: Path,
    device,
    log: Callable[[str], None],
    timer: rollouts.Timer,
    estimate_motion=None,
    camera_track=None,
) -> tuple[dict, dict]:
    """Score one split's videos. Returns (its metrics.json section, {"strips": [...], "gifs": [...]})."""
    from ahriuwu_core.training.precision import autocast_context

    cfg = plan.cfg
    horizons = list(range(1, cfg.horizon + 1))
    acc = scoring.Accumulator()
    quick_psnr, agreement, gt_agreement, strips, gifs = [], [0, 0], [0, 0], [], []
    device = torch.device(device)

    t = time.perf_counter()
    all_clips, skipped = rollouts.read_videos(stores, cfg, world_model, log, camera_track)
    motion_fns = baselines.motion_estimators(all_clips, estimate_motion)
    timer.tick("read_frames", t)
    t = time.perf_counter()
    blur_sigmas = baselines.choose_blur_sigmas(all_clips, cfg.context, cfg.horizon, cfg.blur_sigmas)
    timer.tick("baselines", t)
    for c in all_clips:
        log(f"evaluate: {split} {c.video_id}: {len(c.starts)} clip(s) at frames {c.starts}")
    for batch in rollouts.batch_items(all_clips, cfg.batch_size):
        with torch.no_grad(), autocast_context(device):
            br = rollouts.roll_out_batch(
                tokenizer, world_model, rollout_fn, all_clips, batch, plan, acc, timer, quick_psnr, device
            )
            shuffled_u8 = action_control.roll_out_shuffled(world_model, rollout_fn, tokenizer, br, plan, timer, device)
            predicted = baselines.predict(tokenizer, world_model, br, all_clips, plan, motion_fns, blur_sigmas, timer)
        for v in sorted({v for v, _ in batch}):  # metrics per video: each has its own HUD mask
            rows = np.array([k for k, (vv, _) in enumerate(batch) if vv == v])
            clips = all_clips[v]
            t = time.perf_counter()
            scoring.score_video(acc, br, rows, clips.video_id, clips.hud_mask, predicted, plan, device)
            act_rows = action_control.score_action_gap(acc, br, rows, shuffled_u8, clips.hud_mask, plan)
            timer.tick("metrics", t)
            action_control.add_agreement(agreement, gt_agreement, br, act_rows, clips, plan, motion_fns[v], timer)
            report.write_pictures(out_dir, br, rows, clips.video_id, plan.primary, cfg, strips, gifs, timer)
    section = scoring.split_metrics(
        acc,
        plan,
        horizons,
        [c.video_id for c in all_clips],
        skipped,
        quick_psnr,
        action_control.action_metrics(acc, agreement, gt_agreement),
        blur_sigmas,
    )
    return section, {"strips": strips, "gifs": gifs}
