"""The real-game benchmark: a fresh run of every stage per source (the demo and built-in Atari games), all with one
preset, then each run's test figures with validation beside them.

    .venv/bin/python bench/games.py                              # demo, breakout, ms_pacman, riverraid (~15 min each)
    .venv/bin/python bench/games.py --sources atari:pong atari:enduro
    .venv/bin/python bench/games.py --summarize bench/out/games   # print the table of runs already made
    .venv/bin/python bench/games.py --quick                      # the suite's smoke run: tiny preset, short videos

Each source gets its own data root and DAGSTER_HOME under --out (`<out>/<source>/`), and runs what `make demo`
runs (`python -m pipeline.demo`), so the figures are those the evaluation asset shows. Per source and split it
prints one JSON line:
  source, split, videos, clips                      what was scored
  psnr.<series>                                     dB at h=1/2/4/8/16 for the model (model_k4), its conditional
                                                    mean, and the baselines (persistence, latent_persistence,
                                                    persistence_blur, prior_only, scroll_oracle, tokenizer_ceiling)
  margin_ci95.model_k4                              K=4 minus persistence at those horizons, with the clustered
                                                    95% interval (videos, then clips)
  margin_over_latent_persistence, mean_over_prior   the two bars a model must clear where pixels cannot tell
  lpips.model_k4 / lpips.persistence, action_gap_db_h8
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HORIZONS = (1, 2, 4, 8, 16)
SOURCES = ("demo", "atari:breakout", "atari:ms_pacman", "atari:riverraid")
SERIES = (
    "model_k4",
    "model_k4_mean",
    "persistence",
    "latent_persistence",
    "persistence_blur",
    "prior_only",
    "scroll_oracle",
    "tokenizer_ceiling",
)


def run_source(source: str, out: Path, env: dict) -> float:
    """Materialize every stage for one source in a fresh data root and instance; returns the wall seconds."""
    base = out / source.replace(":", "_").replace(",", "+")
    if base.exists():
        shutil.rmtree(base)
    home = base / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    run_env = {
        **os.environ,
        **env,
        "AHRIUWU_SOURCE": source,
        "AHRIUWU_DATA_ROOT": str(base / "assets"),
        "DAGSTER_HOME": str(home),
        "AHRIUWU_AUTOMATION": "off",
    }
    start = time.perf_counter()
    with open(base / "pipeline.log", "w") as log:
        done = subprocess.run(
            [sys.executable, "-m", "pipeline.demo"], cwd=ROOT, env=run_env, stdout=log, stderr=subprocess.STDOUT
        )
    if done.returncode:
        raise SystemExit(f"{source}: the pipeline failed (exit {done.returncode}); see {base / 'pipeline.log'}")
    return time.perf_counter() - start


def latest_metrics(base: Path) -> dict:
    reports = sorted((base / "assets" / "reports").glob("*/metrics.json"))
    if not reports:
        raise SystemExit(f"{base}: no evaluation report")
    return json.loads(reports[-1].read_text())


def _diff(a, b):
    return [None if x is None or y is None else round(x - y, 2) for x, y in zip(a, b)]


def _at(values, horizons, digits=2):
    return [round(values[horizons.index(h)], digits) if values and h in horizons else None for h in HORIZONS]


def summarize(source: str, split: str, m: dict) -> dict:
    """One split's figures at the benchmark's horizons."""
    hs = m["horizons"]
    psnr = {s: _at(m["psnr"].get(s), hs) for s in SERIES if m["psnr"].get(s)}
    low, high = m["psnr_margin_ci95_low"].get("model_k4"), m["psnr_margin_ci95_high"].get("model_k4")
    margin = _diff(psnr["model_k4"], psnr["persistence"])
    row = {
        "source": source,
        "split": split,
        "videos": len(m["videos"]),
        "clips": m["clips"],
        "psnr": psnr,
        "margin_ci95": {"model_k4": [[a, b, c] for a, b, c in zip(margin, _at(low, hs), _at(high, hs))]},
    }
    if "latent_persistence" in psnr:
        row["margin_over_latent_persistence"] = _diff(psnr["model_k4"], psnr["latent_persistence"])
    mean, prior = psnr.get("model_k4_mean"), psnr.get("prior_only", psnr.get("latent_persistence"))
    if mean and prior:
        row["mean_over_prior"] = _diff(mean, prior)
    if m.get("lpips", {}).get("model_k4"):
        row["lpips"] = {
            s: _at(m["lpips"][s], hs, 4) for s in ("model_k4", "persistence", "latent_persistence") if m["lpips"].get(s)
        }
    gap = m.get("action_gap_db")
    row["action_gap_db_h8"] = round(gap[hs.index(8)], 2) if gap and 8 in hs else None
    return row


def print_summary(source: str, base: Path) -> None:
    m = latest_metrics(base)
    for split in m["splits"]:
        print(json.dumps(summarize(source, split, m[split])), flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sources", nargs="+", default=list(SOURCES))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "games")
    ap.add_argument("--summarize", type=Path, default=None, help="print the table of the runs under this folder")
    ap.add_argument("--quick", action="store_true", help="tiny preset, one short Atari game (the suite's smoke run)")
    args = ap.parse_args(argv)
    env = {}
    if args.quick:
        args.sources = ["atari:breakout"]
        env = {"AHRIUWU_PRESET": "tiny", "AHRIUWU_ATARI_VIDEOS": "3", "AHRIUWU_ATARI_SECONDS": "3"}
    if args.summarize:
        for base in sorted(p for p in args.summarize.iterdir() if (p / "assets").is_dir()):
            print_summary(base.name, base)
        return 0
    for source in args.sources:
        seconds = run_source(source, args.out, env)
        print(json.dumps({"source": source, "pipeline_wall_s": round(seconds)}), flush=True)
        print_summary(source, args.out / source.replace(":", "_").replace(",", "+"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
