"""What an evaluation writes: the strip and GIF of each video's first clip, a PSNR-vs-horizon plot per split,
metrics.json and report.md (pictures first, then each split's tables, test first, then the checks, timings,
config and lineage)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ahriuwu_core.data.files import write_text
from ahriuwu_core.eval.checks import judged_split, run_checks
from ahriuwu_core.eval.config import EvalConfig
from ahriuwu_core.eval.scoring import jsonable
from ahriuwu_core.images import pictures as R

SPLIT_TITLES = {"test": "Test videos (the score)", "validation": "Validation videos (for choosing designs)"}


def series_label(metrics: dict, name: str) -> str:
    """A series' name, with its clip count when it covers fewer clips than the split (K=64 on a subset).
    `metrics`: one split's section."""
    n, clips = (metrics.get("clips_per_series") or {}).get(name), metrics.get("clips")
    return f"{name} ({n} clips)" if n is not None and n != clips else name


def render_split(split: str, m: dict, plot_path: Path) -> list[str]:
    """One split's section: its plot, the tables per metric, the margin intervals, latent MSE and a summary."""
    hs = m["horizons"]
    lines = [
        f"## {SPLIT_TITLES.get(split, split)}: {', '.join(m['videos'])} ({m['clips']} clips)",
        "",
        f"![PSNR vs horizon, {split}]({Path(plot_path).name})",
        "",
    ]
    for metric, label in (
        ("psnr", "PSNR (dB, higher is better)"),
        ("ssim", "SSIM (higher is better)"),
        ("lpips", "LPIPS (lower is better)"),
    ):
        series = {k: v for k, v in m[metric].items() if v is not None}
        if not series:
            continue
        lines += [f"### {split}: {label}, outside the HUD mask", ""]
        rows = [[h] + [series[k][i] for k in series] for i, h in enumerate(hs)]
        header = ["horizon"] + [series_label(m, k) for k in series]
        if metric == "psnr" and m["action_gap_db"]:
            rows = [r + [m["action_gap_db"][i]] for i, r in enumerate(rows)]
            lines.append(R.markdown_table(header + ["action gap (dB)"], rows))
        else:
            lines.append(R.markdown_table(header, rows))
        lines.append("")
    blur = m.get("persistence_blur") or {}
    if blur:
        lines += [
            f"persistence_blur: sigma per horizon {blur['sigma_px']} px from {blur['grid_px']}, {blur['note']}.",
            "",
        ]
    lows, highs = m.get("psnr_margin_ci95_low") or {}, m.get("psnr_margin_ci95_high") or {}
    if lows:
        lines += [
            f"### {split}: PSNR margin over persistence (dB), mean and 95% interval over {m['clips']} clips of "
            f"{len(m['videos'])} videos ({m['psnr_margin_ci95_method']})",
            "",
        ]
        cells = [
            [h]
            + [
                f"{m['psnr'][n][i] - m['psnr']['persistence'][i]:+.2f} [{lows[n][i]:+.2f}, {highs[n][i]:+.2f}]"
                for n in lows
            ]
            for i, h in enumerate(hs)
        ]
        lines += [R.markdown_table(["horizon"] + list(lows), cells), ""]
    lines += [f"### {split}: latent MSE per horizon", ""]
    lat = {k: v for k, v in m["latent_mse"].items() if v is not None}
    lines += [R.markdown_table(["horizon"] + list(lat), [[h] + [lat[k][i] for k in lat] for i, h in enumerate(hs)]), ""]
    summary = [
        ["quick eval latent PSNR (tau=0.5, one step)", m["quick_eval_latent_psnr"]],
        ["clips of the action gap (true vs shuffled actions)", m["action_gap_clips"]],
        ["action agreement (predicted scroll vs action)", m["action_agreement"]],
        ["action agreement on ground truth (reference)", m["action_agreement_ground_truth"]],
        ["videos", ", ".join(m["videos"])],
        ["skipped (shorter than context + horizon)", ", ".join(m.get("skipped_videos", [])) or "none"],
    ]
    lines += [f"### {split}: summary", "", R.markdown_table(["what", "value"], summary), ""]
    return lines


def render_report(metrics: dict, lineage: dict, plot_paths: dict, pictures: dict) -> str:
    lines = ["# Evaluation", ""]
    lines += [
        "Test videos give the score; validation videos are shown beside them, and are what design choices "
        "may look at. Pictures first: automated metrics have rated a poisoned model above a clean one "
        "before. A dream is only worth something where it beats persistence (copying the last frame) and "
        "the baselines that take no skill (the blurred or decoded last frame).",
        "",
    ]
    for split in metrics["splits"]:
        for p in pictures[split]["strips"] + pictures[split]["gifs"]:
            lines.append(f"![{split}: {Path(p).stem}]({Path(p).name})")
    lines.append("")
    for split in metrics["splits"]:
        lines += render_split(split, metrics[split], plot_paths[split])
    lines += [f"## Checks (on the {judged_split(metrics)} videos)", ""]
    rows = []
    for name, (passed, details) in run_checks(metrics).items():
        rows.append([name, "pass" if passed else "FAIL", json.dumps(details, default=str)[:200]])
    lines += [R.markdown_table(["check", "result", "details"], rows), ""]
    lines += [f"Context noise (training value): {metrics['context_noise']['train']}", ""]
    lines += ["## Timings (s)", "", R.markdown_table(["phase", "seconds"], list(metrics["timings_s"].items())), ""]
    lines += ["## Config", "", "```json", json.dumps(metrics["config"], indent=1), "```", ""]
    lines += ["## Lineage", "", "```json", json.dumps(jsonable(lineage), indent=1, default=str), "```", ""]
    return "\n".join(lines)


def write_strip(
    out_dir: Path, video_id: str, gt_clip_u8: np.ndarray, ceiling_u8: np.ndarray, preds_u8: dict, cfg: EvalConfig
) -> Path:
    """Rows: ground truth, tokenizer reconstruction (the ceiling), one per sampling-steps variant; columns: the
    last context frame (ground truth in every row), then the chosen horizons."""
    C = cfg.context
    hs = [h for h in cfg.strip_horizons if 1 <= h <= cfg.horizon] or [cfg.horizon]
    rows = {
        "ground truth": np.stack([gt_clip_u8[C - 1]] + [gt_clip_u8[C + h - 1] for h in hs]),
        "tokenizer recon": np.stack([gt_clip_u8[C - 1]] + [ceiling_u8[h - 1] for h in hs]),
    }
    for name, pred in preds_u8.items():
        if name.endswith("_noise0"):
            continue
        rows[name.replace("model_", "model ")] = np.stack([gt_clip_u8[C - 1]] + [pred[0, h - 1] for h in hs])
    labels = ["last context"] + [f"h={h}" for h in hs]
    strip = R.make_strip(rows, labels, title=f"{video_id}: ground truth vs prediction")
    return R.atomic_save(strip, out_dir / f"strip_{video_id}.png")


def write_pictures(
    out_dir: Path, br, rows, video_id: str, primary: str, cfg: EvalConfig, strip_paths: list, gif_paths: list, timer
) -> None:
    """The strip (and GIF) of the video's first clip, when this batch holds it."""
    first = [k for k in rows if br.items[k][1] == 0]
    if not first:
        return
    k = first[0]
    t = time.perf_counter()
    strip_paths.append(
        write_strip(
            out_dir, video_id, br.gt_u8[k], br.ceiling_u8[k], {n: p[k : k + 1] for n, p in br.preds_u8.items()}, cfg
        )
    )
    if cfg.gif:
        gif_paths.append(
            R.write_gif(br.gt_u8[k], br.preds_u8[primary][k], cfg.context, out_dir / f"rollout_{video_id}.gif")
        )
    timer.tick("pictures", t)


def write_outputs(out_dir: Path, metrics: dict, lineage: dict | None, pictures: dict, plot_names) -> dict:
    """Write a PSNR-vs-horizon plot per split, metrics.json and report.md. Returns their paths and the plots."""
    plots, plot_paths = {}, {}
    for split in metrics["splits"]:
        psnr = metrics[split]["psnr"]
        plots[split] = R.line_plot(
            metrics[split]["horizons"],
            {k: psnr[k] for k in psnr if k in plot_names},
            f"PSNR vs horizon ({split} videos, outside HUD)",
            "horizon (frames)",
            "PSNR (dB)",
        )
        plot_paths[split] = R.atomic_save(plots[split], out_dir / f"psnr_vs_horizon_{split}.png")
    metrics_path = write_text(out_dir / "metrics.json", json.dumps(metrics, indent=1))
    report_path = write_text(out_dir / "report.md", render_report(metrics, lineage or {}, plot_paths, pictures))
    return {"plots": plots, "plot_paths": plot_paths, "metrics_path": metrics_path, "report_path": report_path}
