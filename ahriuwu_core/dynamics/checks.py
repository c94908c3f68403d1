"""Checks on a trained world model, each returning (passed, metadata): run before its checkpoint is published.

- finite loss: every logged loss and the final loss are finite.
- loss improved: the last logged losses are below the first by more than their noise. Each logged loss is one
  batch's (random windows, signal levels and noise), so on short runs the batch-to-batch spread exceeds what
  training changed; the check asks for a drop of `z` standard errors of the difference of the two means, and
  with fewer than `min_per_end` logged losses at each end it does not judge (recorded as judged=False).
- action conditioning alive: training taught the network its actions. The action-kernel prior answers to the
  actions by itself once its least-squares fit is set before training, so the check looks past it: the action
  embeddings moved from their initial values (they got gradient), and the network's own prediction changes when the
  actions change, with the prior's guess held at the true actions. This says the trained action path reaches the
  output, not that the model uses actions well (the evaluation's controllability measures that).
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import torch
from torch import nn

from .data import LatentWindows
from .model import WorldModel, shift_previous
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


class _PriorAt(nn.Module):
    """The model's prior, reading fixed actions whatever it is given."""

    def __init__(self, prior, actions, has_actions):
        super().__init__()
        self.inner, self.actions, self.has_actions = prior, actions, has_actions

    def forward(self, previous, actions=None, has_actions=None):
        return self.inner(previous, self.actions, self.has_actions)


@contextlib.contextmanager
def _prior_held_at(model, actions, has_actions):
    prior = model.prior
    if prior is not None:
        model.prior = _PriorAt(prior, actions, has_actions)
    try:
        yield
    finally:
        if prior is not None:
            model.prior = prior


def initial_action_embeddings(model, train_seed: int) -> list[torch.Tensor]:
    """The action embedding tables the model started training with: training builds the model right after
    torch.manual_seed(train_seed), so the same construction gives the same initial weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train_seed)
        start = WorldModel(model.cfg)
    return [e.weight.detach().float() for e in start.action_embed]


@torch.no_grad()
def check_action_alive(
    model,
    stores,
    train_seed: int = 0,
    windows: int = 8,
    length: int = 4,
    tau: float = 0.5,
    seed: int = 0,
    min_relative_change: float = 1e-4,
    min_embedding_change: float = 1e-5,
) -> tuple[bool, dict]:
    """Two conditions, both on what training made of the action path:
    - each action component's embedding table moved from its initial value (rebuilt from `train_seed`) by more
      than `min_embedding_change` of its norm. Embeddings take no weight decay: without gradient they stay put
      (float rounding of the weight average moves them ~1e-7); a short tiny run moves them ~5e-4.
    - on `windows` training windows (clean context, the last frame noised to `tau`), the mean absolute change of
      the last frame's prediction when every action component moves to the next class, with the prior's guess
      held at the true actions, relative to the prediction's mean magnitude, is above `min_relative_change`. A
      network that ignores actions changes it by float rounding only (~1e-7).
    Not judged (passes, judged=False) when no training frame is labelled: there was no action to learn."""
    model.eval()
    device = next(model.parameters()).device
    data = LatentWindows(stores, model.cfg.action_num_classes)
    if not any(v.has_actions.any() for v in data.videos):
        return True, {"judged": False, "reason": "no training frame is labelled with an action"}
    start = initial_action_embeddings(model, train_seed)
    moved = [
        float((e.weight.detach().float().cpu() - w0).norm() / w0.norm().clamp_min(1e-12))
        for e, w0 in zip(model.action_embed, start)
    ]
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
    with_prior = model(z, levels, step, other, has, previous=previous)[:, -1].float()
    with _prior_held_at(model, actions, has):
        moved_net = model(z, levels, step, other, has, previous=previous)[:, -1].float()
    scale = max(float(pred.abs().mean()), 1e-12)
    relative = float((pred - moved_net).abs().mean()) / scale
    passed = math.isfinite(relative) and relative > min_relative_change and min(moved) > min_embedding_change
    return passed, {
        "judged": True,
        "relative_change": relative,
        "threshold": min_relative_change,
        "embedding_change": min(moved),
        "embedding_change_per_component": moved,
        "embedding_threshold": min_embedding_change,
        "relative_change_with_prior": float((pred - with_prior).abs().mean()) / scale,
        "windows": B,
        "frames_per_window": T,
    }
