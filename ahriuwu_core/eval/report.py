"""What an evaluation writes: the strip and GIF of each video's first clip, the PSNR-vs-horizon plot,
metrics.json and report.md (pictures first, then the tables, the checks, timings, config and lineage)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ahriuwu_core import report as R
from ahriuwu_core.files import write_text
from ahriuwu_core.eval.checks import run_checks
from ahriuwu_core.eval.config import EvalConfig
from ahriuwu_core.eval.scoring import jsonable


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
    lines += ["## Lineage", "", "```json", json.dumps(jsonable(lineage), indent=1, default=str), "```", ""]
    return "\n".join(lines)


def write_strip(out_dir: Path, video_id: str, gt_clip_u8: np.ndarray, ceiling_u8: np.ndarray, preds_u8: dict,
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


def write_pictures(out_dir: Path, br, rows, video_id: str, primary: str, cfg: EvalConfig, strip_paths: list,
                   gif_paths: list, timer) -> None:
    """The strip (and GIF) of the video's first clip, when this batch holds it."""
    first = [k for k in rows if br.items[k][1] == 0]
    if not first:
        return
    k = first[0]
    t = time.perf_counter()
    strip_paths.append(write_strip(out_dir, video_id, br.gt_u8[k], br.ceiling_u8[k],
                                   {n: p[k : k + 1] for n, p in br.preds_u8.items()}, cfg))
    if cfg.gif:
        gif_paths.append(R.write_gif(br.gt_u8[k], br.preds_u8[primary][k], cfg.context,
                                     out_dir / f"rollout_{video_id}.gif"))
    timer.tick("pictures", t)


def write_outputs(out_dir: Path, metrics: dict, cfg: EvalConfig, horizons, lineage: dict | None, strip_paths,
                  gif_paths, plot_names) -> dict:
    """Write the plot, metrics.json and report.md. Returns their paths and the plot figure."""
    plot_series = {k: metrics["psnr"][k] for k in metrics["psnr"] if k in plot_names}
    plot = R.line_plot(horizons, plot_series, "PSNR vs horizon (held-out, outside HUD)", "horizon (frames)",
                       "PSNR (dB)")
    plot_path = R.atomic_save(plot, out_dir / "psnr_vs_horizon.png")
    metrics_path = write_text(out_dir / "metrics.json", json.dumps(metrics, indent=1))
    report_path = write_text(out_dir / "report.md", render_report(metrics, cfg, lineage or {}, plot_path,
                                                                  strip_paths, gif_paths))
    return {"plot": plot, "plot_path": plot_path, "metrics_path": metrics_path, "report_path": report_path}
