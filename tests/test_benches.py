"""Every bench in bench/ runs here in its smoke mode on tiny inputs, so none rots; the figures it prints are checked
for presence and sanity (not for the goals: those are met in bench/RESULTS.md by the full runs).
bench/games.py has its own smoke test (tests/test_bench_games.py)."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_bench(*args: str, timeout: int = 300) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def figures(out: str) -> dict[str, float]:
    """Every `name=<number>` the bench printed (the last value of a name wins)."""
    return {k: float(v) for k, v in re.findall(r"([A-Za-z0-9_]+)=(-?[0-9.]+(?:e-?[0-9]+)?)\b", out)}


def positive(found: dict, *names: str) -> None:
    for name in names:
        assert name in found, f"{name} not printed; got {sorted(found)}"
        assert math.isfinite(found[name]) and found[name] > 0, (name, found[name])


def validation_store(root: Path) -> Path:
    manifest = json.loads((root / "manifest.json").read_text())
    return root / "frames" / f"{(manifest['validation'] or manifest['test'])[0]}.zarr"


def test_loader_bench():
    found = figures(run_bench("bench/loader.py", "--smoke"))
    positive(found, "loader_frames_per_s_in_memory", "loader_frames_per_s_zarr", "train_frames_per_s")
    positive(found, "loader_vs_train_ratio", "loader_vs_train_ratio_zarr")
    assert found["loader_vs_train_ratio"] == pytest.approx(
        found["loader_frames_per_s_in_memory"] / found["train_frames_per_s"], rel=0.05
    )


def test_tokenizer_bench():
    found = figures(run_bench("bench/tokenizer.py", "--smoke", "--presets", "demo/cnn"))
    positive(found, "tokenizer_encode_fps", "pyav_decode_fps", "tokenizer_encode_vs_decode_ratio")


def test_extract_bench(tmp_path):
    out = run_bench("bench/extract.py", "--smoke", "--out", str(tmp_path))
    found = figures(out)
    positive(found, "extract_fps_ratio_vs_ffmpeg", "extract_peak_rss_ratio_10min_vs_1min")
    positive(found, "extract_peak_rss_rise_vs_all_frames_in_memory")
    assert "fixed cost per call" in out  # the start-up each tool pays is measured and taken out


def test_dynamics_bench():
    found = figures(run_bench("bench/dynamics.py", "--smoke"))
    positive(found, "train_tokens_per_s", "rollout_s_k4", "rollout_s_k64", "kv_cost_ratio_t64_vs_t8")
    # 64 sampling steps cannot cost less than 4 of the same steps
    assert found["k4_speedup_vs_k64"] > 2.0, found["k4_speedup_vs_k64"]


def test_dynamics_bench_toy_eval():
    found = figures(run_bench("bench/dynamics.py", "--toy-eval", "30", "--toy-steps", "2"))
    positive(found, "psnr_model", "psnr_copy_last", "toy_train_s")
    assert "action_gap_h8_db" in found and "min_gain_vs_copy_h1_16_db" in found


def test_long_video_bench(tmp_path):
    found = figures(run_bench("bench/long_video.py", "--smoke", "--out", str(tmp_path)))
    positive(found, "long_video_frames_rss_ratio", "long_video_latents_rss_ratio")


def test_rerun_bench():
    out = run_bench("bench/rerun.py", "--quick", timeout=600)
    found = figures(out)
    assert found["automation_requests_before_new_video"] == 0
    assert found["steps_after_adding_one_video"] == 2  # the new video's frames and latents
    # beyond the new video's own stages, only the manifest (it lists the new video) reruns; training waits
    assert found["other_steps"] == 1 and "ran dataset_manifest[None] x1" in out, out[-2000:]
    assert 0 < found["rerun_steps_ratio_vs_full"] < 1


def test_play_bench(demo_model_root):
    out = run_bench("bench/play.py", "--smoke", "--data-root", str(demo_model_root))
    found = figures(out)
    positive(found, "play_fps", "play_latency_ratio_late_vs_early", "play_rss_ratio_late_vs_early")
    assert "windowed: latency" in out and "at frame 100" in out


def test_dynamics_curve_bench(demo_model_root, tmp_path):
    out = run_bench(
        "bench/dynamics_curve.py",
        "--assets",
        str(demo_model_root),
        "--steps",
        "4",
        "--every",
        "2",
        "--clips-per-video",
        "1",
        "--threads",
        "1",
        "--out",
        str(tmp_path / "curve"),
    )
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    snapshots = [r for r in rows if "step" in r]
    assert [r["step"] for r in snapshots] == [2, 4], rows
    for row in snapshots:
        assert row["split"] == "validation" and row["clips"] >= 1
        for h, (mean, low, high) in row["model_k4"].items():
            assert low <= mean <= high, (h, row["model_k4"])
        assert all(5 < v < 100 for v in row["persistence_psnr"].values()), row


def test_linear_prior_bench(demo_model_root):
    out = run_bench("bench/linear_prior.py", "--assets", str(demo_model_root), "--clips-per-video", "2")
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(rows) == 1 and rows[0]["clips"] >= 2, out
    for h in ("h1", "h2", "h4", "h8", "h16"):
        mean, low, high = rows[0][h]
        assert low <= mean <= high and abs(mean) < 40, (h, rows[0][h])


def test_evaluate_bench(demo_model_root, tmp_path):
    out = run_bench(
        "bench/evaluate.py",
        "--frames",
        str(validation_store(demo_model_root)),
        "--clips-per-video",
        "1",
        "--steps",
        "4",
        "--context",
        "4",
        "--horizon",
        "4",
        "--no-zero-noise",
        "--threads",
        "1",
        "--out",
        str(tmp_path),
    )
    positive(figures(out), "evaluate_batched_speedup_vs_one_clip")
