"""Scores per horizon: PSNR / SSIM / LPIPS outside the HUD mask and latent MSE for every series, the baselines
they are compared with (persistence, persistence with constant motion, the tokenizer ceiling), bootstrap
intervals of the margin over persistence, and the metrics dictionary that metrics.json holds."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from ahriuwu_core import metrics as M
from ahriuwu_core.eval.config import Plan, variant_name
from ahriuwu_core.eval.rollouts import BatchRollout, Clips, Timer
from ahriuwu_core.motion import constant_velocity_rollout, estimate_shift, motion_weights


class Accumulator:
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


def image_metrics(acc, series, pred_u8, gt_u8, mask, cfg, device):
    acc.add("psnr", series, M.psnr(pred_u8, gt_u8, mask))
    acc.add("ssim", series, M.ssim(pred_u8, gt_u8, mask))
    if cfg.lpips_net:
        acc.add("lpips", series, M.lpips_distance(pred_u8, gt_u8, mask, net=cfg.lpips_net, device=device))


# ------------------------------------------------------------------------------------------ baselines


def hud_faded_estimator(hud_mask, size):
    """The default motion estimate for a video: phase correlation with its HUD faded out."""
    weights = motion_weights(size[0], size[1], hud_mask)
    return lambda a, b: estimate_shift(a, b, weights)


def motion_estimators(all_clips: list[Clips], estimate_motion=None) -> list:
    """Per video: `estimate_motion` when the caller passes one, else `hud_faded_estimator` for its HUD mask."""
    return [estimate_motion or hud_faded_estimator(c.hud_mask, c.frames.shape[2:4]) for c in all_clips]


def baselines(br: BatchRollout, plan: Plan, motion_fns, timer: Timer) -> tuple[np.ndarray, np.ndarray]:
    """(persistence, persistence_motion) predictions of the horizon, uint8 like the ground truth: the last
    context frame repeated, and the last context frame moved on at the velocity of the last two."""
    C, H, gt_u8 = plan.cfg.context, plan.cfg.horizon, br.gt_u8
    persistence_u8 = np.repeat(gt_u8[:, C - 1 : C], H, axis=1)
    t = time.perf_counter()
    motion_u8 = np.stack([constant_velocity_rollout(gt_u8[k, C - 2], gt_u8[k, C - 1], H, motion_fns[v])
                          if C >= 2 else persistence_u8[k] for k, (v, _) in enumerate(br.items)])
    timer.tick("persistence_motion", t)
    return persistence_u8, motion_u8


def score_video(acc, br: BatchRollout, rows: np.ndarray, mask, persistence_u8, motion_u8, plan: Plan, device):
    """Image metrics of the baselines and every variant on one video's rows of the batch (each video has its
    own HUD mask). A variant rolled out on fewer clips also gets the first variant scored on exactly those."""
    cfg, future_u8, preds_u8 = plan.cfg, br.future_u8, br.preds_u8
    image_metrics(acc, "persistence", persistence_u8[rows], future_u8[rows], mask, cfg, device)
    image_metrics(acc, "persistence_motion", motion_u8[rows], future_u8[rows], mask, cfg, device)
    image_metrics(acc, "tokenizer_ceiling", br.ceiling_u8[rows], future_u8[rows], mask, cfg, device)
    for name, pred_u8 in preds_u8.items():
        ran = rows[br.ran_rows[name][rows]]
        if len(ran):
            image_metrics(acc, name, pred_u8[ran], future_u8[ran], mask, cfg, device)
        if len(ran) < len(rows) and len(ran):  # the first variant on the same clips, for a fair comparison
            acc.add("psnr", f"{plan.primary}@{name}", M.psnr(preds_u8[plan.primary][ran], future_u8[ran], mask))


# ------------------------------------------------------------------------------------------- metrics


def assemble_metrics(acc, plan: Plan, horizons, videos, quick_psnr, action: dict, timings) -> dict:
    """The metrics.json content. `action`: `action_control.action_metrics`."""
    cfg, variants, mean_name, noise = plan.cfg, plan.variants, plan.mean_name, plan.noise
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
    out["action_gap_db"] = action["action_gap_db"]
    out["videos"] = videos
    out["latent_mse"] = {n: acc.per_horizon("latent_mse", n) for n in main + extra + ["persistence"]}
    out["context_noise"] = {"train": noise, "variants": {variant_name(k, z): (0.0 if z else noise)
                                                         for k, z in variants}}
    out["quick_eval_latent_psnr"] = float(np.mean(quick_psnr)) if quick_psnr else None
    for key in ("action_gap_available", "action_agreement", "action_agreement_ground_truth",
                "action_agreement_steps"):
        out[key] = action[key]
    out["config"] = jsonable(dataclasses.asdict(cfg))
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


def jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj
