"""Shortcut forcing (paper convention: tau=0 pure noise, tau=1 clean; z_tau = (1-tau)*noise + tau*clean).

- x-prediction: the model outputs the clean latents x_hat; its velocity is b = (x_hat - z_tau) / (1 - tau).
- diffusion forcing: every frame has its own tau (on the grid of multiples of its step size d).
- step size d = 1 / U{1, 2, 4, ..., k_max} per example (the paper), or, with `shortcut_fraction` set, d = 1/k_max
  for all but that fraction of examples and d uniform over the coarser sizes for the rest (as in Frans et al.'s
  shortcut models, 1/4). Early on the bootstrap target is the model's own output, so those examples carry
  almost no gradient: with k_max=64 the paper's sampling spends 6/7 of the batch on them.
- The finest step d = 1/k_max takes a plain squared error to the clean latent. Larger steps regress onto the
  bootstrap: two half-steps of size d/2 from the (stop-gradient) model give velocities b1, b2; the loss is
  (1-tau)^2 * |b_hat - (b1+b2)/2|^2, which equals |x_hat - x_target|^2 with x_target = z + (1-tau)(b1+b2)/2 --
  so no division by (1-tau) ever reaches the student, and the teacher's divisions are bounded because
  tau <= 1 - d.
- ramp weight w(tau) = 0.9*tau + 0.1 (noisy frames carry less signal), or a flat weight (`loss_weight`).
- single images: a fraction of examples attend only within each frame.
- with an action-kernel prior (`DynamicsConfig.prior_kernel`), a third term fits the prior's guess of each frame
  (from the previous clean frame and the frame's action) to the clean frame: not in the paper.
- context corruption: with probability `context_prefix_prob` an example's first frames are context frames at
  signal level 1 - context_noise and step 1/k_max -- exactly how the sampler feeds past frames.
- each term is a mean over the frames of the whole (global) batch: with `reduce_sum` (data parallel) the sums
  and counts are added over ranks, so the ranks' averaged gradients equal one process's on the union batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .model import shift_previous
from .prior import prior_error


@dataclass
class ObjectiveConfig:
    single_image_fraction: float = 0.3
    context_noise: float = 0.1  # context frames sit at tau = 1 - context_noise (training and rollout)
    context_prefix_prob: float = 0.5  # fraction of sequence examples with a context-level prefix
    shortcut_fraction: float | None = None  # fraction of examples with d > 1/k_max; None = uniform over sizes
    loss_weight: str = "ramp"  # per-frame weight: "ramp" (the paper's 0.9*tau + 0.1) or "flat" (1)


def ramp_weight(tau: torch.Tensor) -> torch.Tensor:
    return 0.9 * tau + 0.1


def frame_weight(tau: torch.Tensor, kind: str) -> torch.Tensor:
    """The paper's ramp, or a flat weight: with a preconditioned model the x-space error already shrinks with tau
    (the skip is near exact for nearly clean frames), so flat spends the loss where the noise is."""
    if kind == "ramp":
        return ramp_weight(tau)
    if kind == "flat":
        return torch.ones_like(tau)
    raise ValueError(f"ObjectiveConfig.loss_weight={kind!r}: expected 'ramp' or 'flat'")


def add_noise(clean: torch.Tensor, noise: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """z_tau = (1 - tau) * noise + tau * clean; tau (B,T) broadcasts over (N, D)."""
    t = tau[..., None, None]
    return (1 - t) * noise + t * clean


def flow_step(z: torch.Tensor, tau: torch.Tensor, d: torch.Tensor, x_pred: torch.Tensor) -> torch.Tensor:
    """Euler step along the x-prediction's velocity: z_{tau+d} = z + d * (x_pred - z) / (1 - tau).
    Written as a convex mix so tau + d = 1 returns x_pred exactly. Requires tau + d <= 1."""
    t, s = tau[..., None, None], d[..., None, None]
    a = s / (1 - t)
    return (1 - a) * z + a * x_pred


def bootstrap_target(z, tau, d, x_first, z_mid, x_second) -> torch.Tensor:
    """x-space target whose velocity from z is the average of the two half-step velocities:
    b1 = (x_first - z)/(1-tau), b2 = (x_second - z_mid)/(1-tau-d/2), target = z + (1-tau)(b1+b2)/2."""
    t, s = tau[..., None, None], d[..., None, None]
    ratio = (1 - t) / (1 - t - s / 2)  # in [1, 2] on the grid (tau <= 1 - d)
    return z + 0.5 * ((x_first - z) + ratio * (x_second - z_mid))


def step_size_choices(k_max: int) -> list[float]:
    return [2.0**-i for i in range(int(math.log2(k_max)) + 1)]


def sample_step_sizes(batch: int, k_max: int, generator=None, shortcut_fraction: float | None = None) -> torch.Tensor:
    """d = 1 / U{1, 2, 4, ..., k_max}, shape (batch,), float32 on CPU. With `shortcut_fraction`, d = 1/k_max except
    for that fraction of examples, whose d is uniform over the coarser sizes {1, 1/2, ..., 2/k_max}."""
    levels = int(math.log2(k_max)) + 1
    if shortcut_fraction is None or levels == 1:
        idx = torch.randint(0, levels, (batch,), generator=generator)
    else:
        coarse = torch.randint(0, levels - 1, (batch,), generator=generator)
        short = torch.rand(batch, generator=generator) < shortcut_fraction
        idx = torch.where(short, coarse, torch.full_like(coarse, levels - 1))
    return 2.0 ** -idx.float()


def sample_signal_levels(step: torch.Tensor, frames: int, generator=None) -> torch.Tensor:
    """Independent tau per frame on the grid {0, d, 2d, ..., 1-d} of its example's step d. (B,) -> (B,T)."""
    n = (1.0 / step).round()  # grid points per example
    u = torch.rand(step.shape[0], frames, generator=generator)
    return torch.floor(u * n[:, None]).clamp(max=n[:, None] - 1) * step[:, None]


def _model_config(model):
    return model.module.cfg if hasattr(model, "module") else model.cfg


def sample_corruption(B: int, T: int, k_max: int, cfg: ObjectiveConfig, generator=None):
    """Per-example step sizes (B,), per-frame signal levels and steps (B,T), single-image flags (B,), on CPU."""
    d_min = 1.0 / k_max
    step_b = sample_step_sizes(B, k_max, generator, cfg.shortcut_fraction)
    tau = sample_signal_levels(step_b, T, generator)
    step = step_b[:, None].expand(B, T).clone()
    isolated = torch.rand(B, generator=generator) < cfg.single_image_fraction
    if T > 1:
        prefix = (torch.rand(B, generator=generator) < cfg.context_prefix_prob) & ~isolated
        prefix_len = torch.randint(1, T, (B,), generator=generator) * prefix
        ctx = torch.arange(T)[None] < prefix_len[:, None]
        tau = torch.where(ctx, torch.tensor(1.0 - cfg.context_noise), tau)
        step = torch.where(ctx, torch.tensor(d_min), step)
    return tau, step, isolated


def shortcut_forcing_loss(
    model,
    clean,
    actions,
    has_actions,
    cfg: ObjectiveConfig = None,
    *,
    generator=None,
    normalizer=None,
    teacher=None,
    example_generators: Sequence | None = None,
    reduce_sum: Callable | None = None,
):
    """One shortcut-forcing loss on a batch of clean tokenizer latents (B,T,N,D), standardized by the model's
    latent stats first (all noise levels and losses live in that unit-scale space). `teacher` (default: the
    unwrapped model) computes the stop-gradient bootstrap targets; pass the raw module when `model` is DDP-wrapped.
    `normalizer` (e.g. training.RunningRMS: called with (name, value), read with .rms(name)) rescales the terms.
    Randomness: `generator` draws for the whole batch; `example_generators` (one per example) makes each
    example's corruption and noise depend on its own generator only, whatever batch or rank it lands in.
    `reduce_sum(t)` (data parallel) returns t summed over ranks: the terms become means over the global batch and
    the returned loss is this rank's share times the number of ranks, so DDP's gradient mean is the global one.
    Returns (loss, stats) with stats holding floats (global-batch values)."""
    cfg = cfg or ObjectiveConfig()
    mcfg = _model_config(model)
    teacher = teacher or (model.module if hasattr(model, "module") else model)
    dev = clean.device
    B, T = clean.shape[:2]
    d_min = 1.0 / mcfg.k_max
    if example_generators is not None:
        if len(example_generators) != B:
            raise ValueError(f"{len(example_generators)} example generators for a batch of {B}")
        drawn = [
            (
                *sample_corruption(1, T, mcfg.k_max, cfg, g),
                torch.randn((1, *clean.shape[1:]), generator=g, device=g.device),
            )
            for g in example_generators
        ]
        tau, step, isolated, noise = (torch.cat([d[i].to(dev) for d in drawn]) for i in range(4))
    else:
        tau, step, isolated = sample_corruption(B, T, mcfg.k_max, cfg, generator)
        gdev = generator.device if generator is not None else dev
        noise = torch.randn(clean.shape, generator=generator, device=gdev)
    tau, step, isolated, noise = tau.to(dev), step.to(dev), isolated.to(dev), noise.to(dev)
    clean = teacher.standardize(clean)
    z = add_noise(clean, noise, tau)
    previous = shift_previous(clean)  # what the sampler hands each frame: the previous frame, clean

    flow_frames = step <= d_min * 1.0001  # finest step (incl. context frames): plain x-loss
    boot_frames = ~flow_frames
    target = clean
    if boot_frames.any():
        rows = boot_frames.any(1)
        zs, ts, ss, adv = z[rows], tau[rows], step[rows], boot_frames[rows]
        a_s = actions[rows] if actions is not None else None
        h_s = has_actions[rows] if has_actions is not None else None
        iso, prev_s = isolated[rows], previous[rows]
        with torch.no_grad():
            half = torch.where(adv, ss / 2, ss)
            x1 = teacher(zs, ts, half, a_s, h_s, isolated=iso, previous=prev_s).float()
            z_mid = torch.where(adv[..., None, None], flow_step(zs, ts, half, x1), zs)
            t_mid = torch.where(adv, ts + half, ts)
            x2 = teacher(z_mid, t_mid, half, a_s, h_s, isolated=iso, previous=prev_s).float()
            boot = bootstrap_target(zs, ts, ss, x1, z_mid, x2)
        target = clean.clone()
        target[rows] = torch.where(adv[..., None, None], boot, clean[rows])

    fitted_prior = bool(mcfg.prior_kernel)
    out = model(z, tau, step, actions, has_actions, isolated=isolated, previous=previous, return_prior=fitted_prior)
    x_pred, guess = (out[0].float(), out[1]) if fitted_prior else (out.float(), None)
    err = (x_pred - target).pow(2).mean((-1, -2))  # (B,T)
    weighted = frame_weight(tau, cfg.loss_weight) * err
    sums = {"flow": (weighted * flow_frames).sum(), "bootstrap": (weighted * boot_frames).sum()}
    frame_counts = {"flow": flow_frames.sum().float(), "bootstrap": boot_frames.sum().float()}
    if fitted_prior:  # frames with a previous frame of their own
        valid = (torch.arange(T, device=dev) > 0)[None] & ~isolated[:, None]
        sums["prior"], frame_counts["prior"] = prior_error(guess, clean, valid)
    names = list(sums)
    # Sums and counts of every term (plus 1 per rank, to count them) in one reduction.
    local = torch.stack([v for k in names for v in (sums[k].detach(), frame_counts[k])] + [torch.ones((), device=dev)])
    total = reduce_sum(local.clone()) if reduce_sum is not None else local
    counts = {k: total[2 * i + 1] for i, k in enumerate(names)}
    world = total[-1]
    values = {k: total[2 * i] / total[2 * i + 1] for i, k in enumerate(names)}  # global-batch means
    present = [k for k in names if counts[k] > 0]
    terms = {k: sums[k] * world / counts[k] for k in present}  # this rank's share, times the ranks
    finite = all(bool(torch.isfinite(values[k])) for k in present)
    loss = sum(terms.values())
    if normalizer is not None and finite:  # a non-finite term must not poison the running RMS
        # One running RMS (of the flow term) scales every term: all are x-space squared errors of the same
        # units. A separate RMS for the bootstrap term, which starts tiny, would inflate it by orders of magnitude
        # and wreck training. The RMS is fed the global-batch value so every rank keeps the same scale.
        if "flow" in terms:
            normalizer("flow", values["flow"])
        loss = sum(terms.values()) / (normalizer.rms("flow") + 1e-8)
    stats = {f"loss_{k}": float(values[k]) for k in present}
    stats["loss_raw"] = float(sum(values[k] for k in present if k != "prior"))
    stats["bootstrap_fraction"] = float(counts["bootstrap"] / (counts["flow"] + counts["bootstrap"]))
    return loss, stats
