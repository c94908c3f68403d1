"""Latent loader benchmark: does the loader outpace training by a wide margin?

    .venv/bin/python bench/loader.py --quick

Writes demo-shaped latent stores (6 videos x 600 frames x 64 tokens x 16 dims, float16) to a temp dir, then
measures the latent frames/s that `LatentWindows.batch` delivers (in-memory and zarr-backed) against the frames/s
the demo preset's training loop (`train_dynamics`) consumes. Prints `loader_vs_train_ratio=<x>` (goal >= 10,
in-memory loader). --smoke: the suite's run (2 videos, a fraction of a second per rate, 2 training steps).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

from ahriuwu_core.dynamics.data import LatentWindows, write_latent_store
from ahriuwu_core.dynamics.train import train_dynamics
from ahriuwu_core.presets import get_preset
from ahriuwu_core.testing.toy import make_toy_latents


def loader_rate(stores, cfg, in_memory: bool, seconds: float) -> float:
    data = LatentWindows(stores, stride=cfg.stride, in_memory=in_memory)
    n, step, t = 0, 1, time.perf_counter()
    while time.perf_counter() - t < seconds:
        B, T = cfg.batch_shape(step)
        data.batch(B, T, cfg.seed, step)
        n += B * T
        step += 1
    return n / (time.perf_counter() - t)


def train_rate(stores, cfg, steps: int) -> float:
    """Frames/s of the real training loop (`train_dynamics`, which excludes its set-up from its own clock)."""
    with tempfile.TemporaryDirectory() as out:
        result = train_dynamics(
            stores, dataclasses.replace(cfg, steps=steps, time_limit_s=0.0), Path(out), log=lambda m: None
        )
    return result["frames_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="under a minute on 2 cores")
    ap.add_argument("--smoke", action="store_true", help="the suite's run: seconds, figures only roughly right")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dyn_loader_"))
    videos, seconds, steps = (2, 0.3, 2) if args.smoke else (6, 1.5, 6) if args.quick else (6, 10.0, 20)
    stores = [write_latent_store(tmp / f"v{i}.zarr", *make_toy_latents(600, seed=i)) for i in range(videos)]
    cfg = dataclasses.replace(get_preset("demo").dynamics, long_ratio=0.25)
    mem = loader_rate(stores, cfg, True, seconds)
    disk = loader_rate(stores, cfg, False, seconds)
    train = train_rate(stores, cfg, steps)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"loader_frames_per_s_in_memory={mem:.0f} loader_frames_per_s_zarr={disk:.0f} train_frames_per_s={train:.1f}")
    print(f"loader_vs_train_ratio={mem / train:.1f}")
    print(f"loader_vs_train_ratio_zarr={disk / train:.1f}")


if __name__ == "__main__":
    main()
