"""bench/games.py in its smoke mode: a fresh tiny-preset run of every stage on a short Atari game, and one line of
figures per evaluated split, each present and sane."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_games_bench_quick_runs_every_stage_and_prints_sane_figures(tmp_path):
    done = subprocess.run(
        [sys.executable, "bench/games.py", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert rows[0]["source"] == "atari:breakout" and rows[0]["pipeline_wall_s"] > 0
    splits = [r for r in rows[1:] if r.get("split")]
    assert splits and splits[0]["split"] == "test" and splits[0]["clips"] >= 1
    for row in splits:
        psnr = row["psnr"]
        for series in ("model_k4", "persistence", "latent_persistence", "prior_only", "tokenizer_ceiling"):
            assert 5.0 < psnr[series][0] < 100.0, (series, psnr[series])
        # copying the decoded last latent can never beat the decoder on the frame itself
        assert psnr["latent_persistence"][0] <= psnr["tokenizer_ceiling"][0] + 1.0
        low, high = row["margin_ci95"]["model_k4"][0][1:]
        assert low <= row["margin_ci95"]["model_k4"][0][0] <= high
        assert all(0.0 <= v <= 1.0 for v in row["lpips"]["model_k4"] if v is not None)
