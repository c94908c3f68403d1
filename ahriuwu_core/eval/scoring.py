"""Scores per horizon: PSNR / SSIM / LPIPS outside the HUD mask and latent MSE for every series (the model's
variants and the `baselines`), clustered bootstrap intervals of the margin over persistence, and the metrics
dictionary that metrics.json holds (one section per evaluated split, test first)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ahriuwu_core.eval.baselines import BLUR_NOTE
from ahriuwu_core.eval.config import Plan, variant_name
from ahriuwu_core.eval.rollouts import BatchRollout
from ahriuwu_core.images import metrics as M

# The baselines in the order the tables show them (those that apply: prior_only needs a model with a prior,
# scroll_oracle a source that knows its camera).
BASELINES = (
    "persistence",
    "tokenizer_ceiling",
    "persistence_motion",
    "latent_persistence",
    "persistence_blur",
    "prior_only",
    "scroll_oracle",
)


class Accumulator:
    """Collects per-clip, per-horizon values (B, H) for each metric/series, then averages over clips; and the
    video of each clip (`groups`), in the order the full-coverage series add them."""

    def __init__(self):
        self.values: dict[str, dict[str, list[np.ndarray]]] = {}
        self.videos: list[str] = []

    def add(self, metric: str, series: str, values):
        self.values.setdefault(metric, {}).setdefault(series, []).append(np.asarray(values, dtype=np.float64))

    def add_clips(self, video_id: str, count: int):
        self.videos += [video_id] * count

    def groups(self) -> np.ndarray:
        return np.asarray(self.videos)

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


def score_video(acc, br: BatchRollout, rows: np.ndarray, video_id: str, mask, baselines: dict, plan: Plan, device):
    """Image metrics of the baselines and every variant on one video's rows of the batch (each video has its
    own HUD mask). A variant rolled out on fewer clips also gets the first variant scored on exactly those."""
    cfg, future_u8, preds_u8 = plan.cfg, br.future_u8, br.preds_u8
    acc.add_clips(video_id, len(rows))
    for name, pred_u8 in {**baselines, "tokenizer_ceiling": br.ceiling_u8}.items():
        image_metrics(acc, name, pred_u8[rows], future_u8[rows], mask, cfg, device)
    for name, pred_u8 in preds_u8.items():
        ran = rows[br.ran_rows[name][rows]]
        if len(ran):
            image_metrics(acc, name, pred_u8[ran], future_u8[ran], mask, cfg, device)
        if len(ran) < len(rows) and len(ran):  # the first variant on the same clips, for a fair comparison
            acc.add("psnr", f"{plan.primary}@{name}", M.psnr(preds_u8[plan.primary][ran], future_u8[ran], mask))


# ------------------------------------------------------------------------------------------- metrics


def split_metrics(acc, plan: Plan, horizons, videos, skipped, quick_psnr, action: dict, blur_sigmas) -> dict:
    """One split's section of metrics.json. `action`: `action_control.action_metrics`; `blur_sigmas`: the
    persistence_blur sigma of each horizon."""
    cfg, variants, mean_name = plan.cfg, plan.variants, plan.mean_name
    main = [variant_name(k, False) for k, z in variants if not z]
    extra = [variant_name(k, True) for k, z in variants if z] + ([mean_name] if mean_name else [])
    names = main + [b for b in BASELINES if b in acc.values["psnr"]] + extra
    out = {"horizons": horizons, "videos": videos, "skipped_videos": skipped}
    for metric in ("psnr", "ssim", "lpips"):
        out[metric] = {n: acc.per_horizon(metric, n) if (metric != "lpips" or cfg.lpips_net) else None for n in names}
    persistence = acc.per_clip("psnr", "persistence")
    out["clips"] = int(persistence.shape[0])
    out["clips_per_series"] = {n: int(acc.per_clip("psnr", n).shape[0]) for n in names}
    # Variants scored on fewer clips, with the first variant on exactly those clips (check_few_steps_close).
    out["psnr_same_clips"] = {
        n: {
            "clips": out["clips_per_series"][n],
            main[0]: acc.per_horizon("psnr", f"{main[0]}@{n}"),
            n: acc.per_horizon("psnr", n),
        }
        for n in names
        if f"{main[0]}@{n}" in acc.values["psnr"]
    }
    # The per-clip margin over persistence, resampled by video and then by clip within the videos drawn.
    out["psnr_margin_ci95_low"], out["psnr_margin_ci95_high"] = {}, {}
    for n in names:
        if n != "persistence" and out["clips_per_series"][n] == out["clips"]:
            low, high = M.clustered_bootstrap_mean_ci(
                acc.per_clip("psnr", n) - persistence, acc.groups(), resamples=cfg.bootstrap_resamples, seed=cfg.seed
            )
            out["psnr_margin_ci95_low"][n], out["psnr_margin_ci95_high"][n] = low.tolist(), high.tolist()
    out["psnr_margin_ci95_method"] = (
        f"clustered bootstrap ({cfg.bootstrap_resamples} resamples): videos with "
        "replacement, then clips within each drawn video"
    )
    out["persistence_blur"] = {"sigma_px": list(blur_sigmas), "grid_px": list(cfg.blur_sigmas), "note": BLUR_NOTE}
    out["action_gap_db"] = action["action_gap_db"]
    out["latent_mse"] = {n: acc.per_horizon("latent_mse", n) for n in main + extra + ["persistence"]}
    out["quick_eval_latent_psnr"] = float(np.mean(quick_psnr)) if quick_psnr else None
    for key in (
        "action_gap_available",
        "action_gap_clips",
        "action_agreement",
        "action_agreement_ground_truth",
        "action_agreement_steps",
    ):
        out[key] = action[key]
    return out


def assemble_metrics(splits: dict[str, dict], plan: Plan, timings) -> dict:
    """The metrics.json content: each evaluated split's section (`split_metrics`) under its name, test first, and
    what they share."""
    noise = plan.noise
    return {
        "splits": list(splits),
        **splits,
        "context_noise": {
            "train": noise,
            "variants": {variant_name(k, z): (0.0 if z else noise) for k, z in plan.variants},
        },
        "config": jsonable(dataclasses.asdict(plan.cfg)),
        "timings_s": timings,
    }


def flat_metrics(metrics: dict, horizons=(1, 4, 8, 16)) -> dict[str, float]:
    """Stable scalar keys for Dagster's Plots tab, prefixed by split, e.g. test_psnr_h1_model_k4,
    validation_lpips_h16_persistence, test_psnr_margin_ci95_low_h8_model_k4, test_action_gap_db_h1. PSNR for
    every series; SSIM, LPIPS and the margin interval for the first model variant and the baselines that tell
    skill from blur (the full set is in metrics.json). Only finite numbers are included."""
    flat = {}
    for split in metrics["splits"]:
        m = metrics[split]
        hs = m["horizons"]
        primary = next(iter(m["psnr"]))
        pictures = {primary, "persistence", "latent_persistence", "persistence_blur"}
        keep = {
            "psnr": None,
            "ssim": pictures,
            "lpips": pictures,
            "latent_mse": {primary, "persistence"},
            "psnr_margin_ci95_low": {primary},
            "psnr_margin_ci95_high": {primary},
        }
        for metric, series_kept in keep.items():
            for series, values in (m.get(metric) or {}).items():
                if values is None or (series_kept is not None and series not in series_kept):
                    continue
                for h in horizons:
                    if h in hs:
                        flat[f"{split}_{metric}_h{h}_{series}"] = values[hs.index(h)]
                if not metric.startswith("psnr_margin"):
                    flat[f"{split}_{metric}_mean_{series}"] = float(np.mean(values))
        flat[f"{split}_clips"] = m.get("clips")
        for h in horizons:
            if h in hs and m.get("action_gap_db"):
                flat[f"{split}_action_gap_db_h{h}"] = m["action_gap_db"][hs.index(h)]
        for key in ("quick_eval_latent_psnr", "action_agreement", "action_agreement_ground_truth"):
            flat[f"{split}_{key}"] = m.get(key)
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
