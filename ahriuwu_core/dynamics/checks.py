"""Checks on a trained world model, each returning (passed, metadata): run before its checkpoint is published.

- finite loss: every logged loss and the final loss are finite.
- loss improved: the last logged losses are below the first by more than their noise. Each logged loss is one
  batch's (random windows, signal levels and noise), so on short runs the batch-to-batch spread exceeds what
  training changed; the check asks for a drop of `z` standard errors of the difference of the two means, and
  with fewer than `min_per_end` logged losses at each end it does not judge (recorded as judged=False).
- action conditioning alive: the model's prediction changes when the actions change, on fixed latent windows.
  This says the action path reaches the output, not that the model uses actions well (the evaluation's
  controllability measures that).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from .data import LatentWindows
from .model import shift_previous
from .objective import add_noise


def logged_losses(train_log) -> list[float]:
    """The `loss` of each logged step of a train_log.jsonl, in step order (a resumed run's repeats: the last)."""
    by_step = {}
    path = Path(train_log)
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                if "loss" in row:
                    by_step[int(row["step"])] = float(row["loss"])
    return [by_step[s] for s in sorted(by_step)]


def check_finite_loss(losses: list[float], loss_last) -> tuple[bool, dict]:
    bad = [i for i, v in enumerate(losses) if not math.isfinite(v)]
    last_ok = loss_last is not None and math.isfinite(float(loss_last))
    return (not bad and last_ok and bool(losses)), {
        "logged_losses": len(losses),
        "nonfinite_logged": len(bad),
        "loss_last": float(loss_last) if loss_last is not None else "none",
    }


def check_loss_improved(
    losses: list[float], window: int = 5, z: float = 2.0, min_per_end: int = 3
) -> tuple[bool, dict]:
    """Mean of the last k logged losses below the mean of the first k by more than z standard errors
    (k = min(window, n // 2): the two ends never share a loss)."""
    k = min(window, len(losses) // 2)
    if k < min_per_end:  # too few logged losses to tell a drop from batch noise: not judged
        return True, {
            "judged": False,
            "logged_losses": len(losses),
            "reason": f"{len(losses)} logged losses; judging needs {2 * min_per_end} ({min_per_end} at each end)",
        }
    first, last = torch.tensor(losses[:k], dtype=torch.float64), torch.tensor(losses[-k:], dtype=torch.float64)
    drop = float(first.mean() - last.mean())
    stderr = float(math.sqrt((first.var() + last.var()) / k))
    passed = math.isfinite(drop) and drop > z * stderr
    return passed, {
        "judged": True,
        "logged_losses": len(losses),
        "window": k,
        "loss_first_mean": float(first.mean()),
        "loss_last_mean": float(last.mean()),
        "drop": drop,
        "drop_stderr": stderr,
        "z_required": z,
    }


@torch.no_grad()
def check_action_alive(
    model, stores, windows: int = 8, length: int = 4, tau: float = 0.5, seed: int = 0, min_relative_change: float = 1e-4
) -> tuple[bool, dict]:
    """On `windows` training windows (clean context, the last frame noised to `tau`), the mean absolute change
    of the last frame's prediction when every action component moves to the next class, relative to the
    prediction's mean magnitude. A model that ignores actions changes it by float rounding only (~1e-7)."""
    model.eval()
    device = next(model.parameters()).device
    data = LatentWindows(stores, model.cfg.action_num_classes)
    batch = data.batch(windows, length, seed, 0, device, first=0)
    clean = model.standardize(batch["latents"])
    B, T = clean.shape[:2]
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(clean.shape, generator=gen).to(device)
    levels = torch.ones(B, T, device=device)
    levels[:, -1] = tau
    z = add_noise(clean, noise, levels)
    step = torch.full((B, T), 1.0 / model.cfg.k_max, device=device)
    has = torch.ones(B, T, dtype=torch.bool, device=device)  # every frame labelled, so the label reaches it
    classes = torch.tensor(model.cfg.action_num_classes, device=device)
    actions = batch["actions"]
    other = (actions + 1) % classes
    previous = shift_previous(clean)
    pred = model(z, levels, step, actions, has, previous=previous)[:, -1].float()
    moved = model(z, levels, step, other, has, previous=previous)[:, -1].float()
    change = float((pred - moved).abs().mean())
    scale = float(pred.abs().mean())
    relative = change / max(scale, 1e-12)
    passed = math.isfinite(relative) and relative > min_relative_change
    return passed, {
        "relative_change": relative,
        "mean_abs_change": change,
        "threshold": min_relative_change,
        "windows": B,
        "frames_per_window": T,
    }
