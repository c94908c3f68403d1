"""Latent loader benchmark: does the loader outpace training by a wide margin?

    .venv/bin/python bench/loader.py --quick

Writes demo-shaped latent stores (6 videos x 600 frames x 64 tokens x 16 dims, float16) to a temp dir, then
measures latent samples/s that `LatentWindows.batch` delivers (in-memory and zarr-backed) against the samples/s
one demo-preset training step consumes. Prints `loader_vs_train_ratio=<x>` (goal >= 10, in-memory loader).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from ahriuwu_core.dynamics.config import DynamicsConfig
from ahriuwu_core.dynamics.data import LatentWindows, write_latent_store
from ahriuwu_core.dynamics.model import WorldModel
from ahriuwu_core.dynamics.objective import shortcut_forcing_loss
from ahriuwu_core.presets import get_preset
from ahriuwu_core.testing.toy import make_toy_latents
from ahriuwu_core.training.optim import make_optimizer


def loader_rate(stores, cfg, in_memory: bool, seconds: float) -> float:
    data = LatentWindows(stores, stride=cfg.stride, in_memory=in_memory)
    n, step, t = 0, 1, time.perf_counter()
    while time.perf_counter() - t < seconds:
        B, T = cfg.batch_shape(step)
        data.batch(B, T, cfg.seed, step)
        n += B
        step += 1
    return n / (time.perf_counter() - t)


def train_rate(stores, cfg, steps: int) -> float:
    data = LatentWindows(stores, stride=cfg.stride)
    torch.manual_seed(0)
    model = WorldModel(DynamicsConfig(**{**cfg.model, "num_tokens": data.num_tokens, "token_dim": data.token_dim}))
    opt = make_optimizer(model, cfg.optim)
    obj = cfg.objective()
    n, t = 0, None
    for step in range(1, steps + 2):
        if step == 2:
            t = time.perf_counter()  # first step is warm-up
        B, T = cfg.batch_shape(step)
        b = data.batch(B, T, cfg.seed, step)
        loss, _ = shortcut_forcing_loss(model, b["latents"], b["actions"], b["has_actions"], obj)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= 2:
            n += B
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dyn_loader_"))
    stores = [write_latent_store(tmp / f"v{i}.zarr", *make_toy_latents(600, seed=i)) for i in range(6)]
    cfg = dataclasses.replace(get_preset("demo").dynamics, long_ratio=0.25)
    seconds = 1.5 if args.quick else 10.0
    mem = loader_rate(stores, cfg, True, seconds)
    disk = loader_rate(stores, cfg, False, seconds)
    train = train_rate(stores, cfg, 2 if args.quick else 20)
    print(
        f"loader_samples_per_s_in_memory={mem:.0f} loader_samples_per_s_zarr={disk:.0f} train_samples_per_s={train:.2f}"
    )
    print(f"loader_vs_train_ratio={mem / train:.1f}")
    print(f"loader_vs_train_ratio_zarr={disk / train:.1f}")


if __name__ == "__main__":
    main()
