"""Shortcut-forcing formulas against hand-computed values (paper convention: tau=1 clean)."""

import dataclasses
import math

import pytest
import torch

from ahriuwu_core.dynamics.config import DynamicsConfig
from ahriuwu_core.dynamics.model import WorldModel
from ahriuwu_core.dynamics.objective import (
    ObjectiveConfig,
    add_noise,
    bootstrap_target,
    flow_step,
    ramp_weight,
    sample_signal_levels,
    sample_step_sizes,
    shortcut_forcing_loss,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def t(*v):
    return torch.tensor(v, dtype=torch.float64)


def test_ramp_weight_values():
    assert torch.allclose(ramp_weight(t(0.0, 0.5, 1.0)), t(0.1, 0.55, 1.0))


def test_add_noise_is_paper_convention():
    # z = (1 - tau) * noise + tau * clean: tau=0 -> noise, tau=1 -> clean, tau=0.25 -> 0.75*2 + 0.25*(-2)
    noise, clean = torch.full((1, 3, 1, 1), 2.0), torch.full((1, 3, 1, 1), -2.0)
    z = add_noise(clean, noise, torch.tensor([[0.0, 1.0, 0.25]]))
    assert z.flatten().tolist() == [2.0, -2.0, 1.0]


def test_flow_step_hand_values_and_lands_on_prediction():
    z, x = torch.full((1, 1, 1, 1), 1.0), torch.full((1, 1, 1, 1), 3.0)
    # velocity (3-1)/(1-0.5) = 4; step 0.25 -> 1 + 0.25*4 = 2
    assert flow_step(z, torch.tensor([[0.5]]), torch.tensor([[0.25]]), x).item() == 2.0
    # tau + d = 1 lands exactly on x, even for tiny 1 - tau
    out = flow_step(z, torch.tensor([[1 - 1 / 64]]), torch.tensor([[1 / 64]]), x)
    assert out.item() == 3.0


def test_bootstrap_target_hand_computed():
    z, tau, d = 0.2, 0.5, 0.25
    x1 = 1.0
    z_mid = z + (d / 2) * (x1 - z) / (1 - tau)  # 0.4
    x2 = 0.8
    b1 = (x1 - z) / (1 - tau)  # 1.6
    b2 = (x2 - z_mid) / (1 - tau - d / 2)  # 1.0667
    v = (b1 + b2) / 2
    expected = z + (1 - tau) * v  # 0.86667
    assert abs(z_mid - 0.4) < 1e-12 and abs(expected - (0.2 + 0.5 * (1.6 + 0.4 / 0.375) / 2)) < 1e-12
    f = lambda a: torch.full((1, 1, 1, 1), a, dtype=torch.float64)  # noqa: E731
    tgt = bootstrap_target(f(z), t(tau)[None], t(d)[None], f(x1), f(z_mid), f(x2))
    assert abs(tgt.item() - expected) < 1e-12
    # the x-space loss equals the paper's velocity loss scaled by (1 - tau)^2
    x_hat = 0.3
    velocity_loss = (1 - tau) ** 2 * ((x_hat - z) / (1 - tau) - v) ** 2
    assert abs((x_hat - tgt.item()) ** 2 - velocity_loss) < 1e-12


def test_bootstrap_target_bounded_near_clean_end():
    # tau = 1 - d (largest on the grid) with the finest bootstrap step: no division blows up
    d = 2.0 / 64
    f = lambda a: torch.full((1, 1, 4, 4), a)  # noqa: E731
    tgt = bootstrap_target(f(0.5), torch.tensor([[1 - d]]), torch.tensor([[d]]), f(1.0), f(0.6), f(1.0))
    assert torch.isfinite(tgt).all() and tgt.abs().max() <= 2.0


def test_step_sizes_and_grid_levels():
    g = torch.Generator().manual_seed(0)
    d = sample_step_sizes(4000, 64, g)
    levels = sorted(set(d.tolist()))
    assert levels == [2.0**-i for i in range(6, -1, -1)]
    counts = torch.stack([(d == lv).float().mean() for lv in levels])
    assert (counts - 1 / 7).abs().max() < 0.03  # uniform over the 7 levels
    tau = sample_signal_levels(d, 8, g)
    grid = tau / d[:, None]
    assert torch.allclose(grid, grid.round()) and (tau >= 0).all() and (tau <= 1 - d[:, None] + 1e-9).all()
    # independent per frame: not tied to frame position
    fine = d == 1 / 64
    assert (tau[fine].std(0) > 0.2).all()
    assert abs(tau[fine][:, 0].mean() - tau[fine][:, -1].mean()) < 0.05


def test_shortcut_fraction_keeps_most_examples_on_the_finest_step():
    g = torch.Generator().manual_seed(1)
    d = sample_step_sizes(8000, 64, g, shortcut_fraction=0.25)
    assert abs(float((d == 1 / 64).float().mean()) - 0.75) < 0.02
    coarse = d[d > 1 / 64]
    levels = sorted(set(coarse.tolist()))
    assert levels == [2.0**-i for i in range(5, -1, -1)]  # 1/32 .. 1, uniform among themselves
    counts = torch.stack([(coarse == lv).float().mean() for lv in levels])
    assert (counts - 1 / 6).abs().max() < 0.03
    assert sample_step_sizes(100, 1, g, shortcut_fraction=0.5).eq(1.0).all()  # k_max=1: only d=1 exists


def test_loss_is_invariant_to_latent_scale_once_standardized():
    """The model trains on standardized latents: scaling and shifting the tokenizer's latents (with the stats
    following) must not change the loss -- the noise schedule always meets unit-scale signal."""
    from tests._dynamics import tiny

    clean = torch.randn(4, 3, 8, 4, generator=torch.Generator().manual_seed(0))
    losses = []
    for scale, shift in ((1.0, 0.0), (0.1, 0.3)):
        model = tiny()
        raw = clean * scale + shift
        model.set_latent_stats(raw)
        assert torch.allclose(model.standardize(raw).std((0, 1, 2)), torch.ones(4), atol=1e-4)
        assert torch.allclose(model.unstandardize(model.standardize(raw)), raw, atol=1e-5)
        loss, _ = shortcut_forcing_loss(
            model, raw, None, None, ObjectiveConfig(), generator=torch.Generator().manual_seed(1)
        )
        losses.append(float(loss.detach()))
    assert abs(losses[0] - losses[1]) < 1e-4 * losses[0]


class Recorder(torch.nn.Module):
    """Stub model: x_pred = scale * z; records the student's (last) call inputs."""

    def __init__(self, k_max=8, scale=0.0, oracle=None):
        super().__init__()
        self.cfg = DynamicsConfig(num_tokens=2, token_dim=3, d_model=8, n_heads=2, n_kv_heads=1, k_max=k_max)
        self.scale, self.oracle, self.calls = scale, oracle, []
        self.p = torch.nn.Parameter(torch.ones(()))

    def standardize(self, z):  # the stub works on raw latents
        return z.float()

    def forward(self, z, tau, step, actions=None, has_actions=None, isolated=None, **kw):
        self.calls.append((z.clone(), tau.clone(), step.clone()))
        out = self.oracle.expand_as(z) if self.oracle is not None else self.scale * z
        return out * self.p


def test_loss_zero_for_oracle_and_hand_value_for_zero_model():
    g = torch.Generator().manual_seed(3)
    clean = (torch.rand(1, 5, 2, 3) * 2 - 1).expand(16, -1, -1, -1)  # same sequence in every row
    cfg = ObjectiveConfig(single_image_fraction=0.3, context_noise=0.1, context_prefix_prob=0.5)
    oracle = Recorder(oracle=clean[:1])
    loss, stats = shortcut_forcing_loss(oracle, clean, None, None, cfg, generator=g)
    assert loss.item() < 1e-10  # a perfect x-predictor is also a perfect bootstrap teacher

    zero = Recorder(scale=0.0)
    loss, stats = shortcut_forcing_loss(zero, clean, None, None, cfg, generator=torch.Generator().manual_seed(3))
    _, tau, step = zero.calls[-1]
    flow = step <= 1 / 8 + 1e-9
    err = clean.pow(2).mean((-1, -2))
    # flow frames: squared error to clean; bootstrap frames: both half-steps predict 0 -> target 0 -> error 0
    expected_flow = ((0.9 * tau + 0.1) * err)[flow].mean()
    assert abs(stats["loss_flow"] - expected_flow.item()) < 1e-6
    assert stats["loss_bootstrap"] < 1e-12
    # context prefix frames sit at 1 - context_noise with the finest step
    ctx = (tau - 0.9).abs() < 1e-6
    assert ctx.any() and (step[ctx] == 1 / 8).all()

    # a flat weight: the plain mean squared error of the flow frames
    flat = dataclasses.replace(cfg, loss_weight="flat")
    loss, stats = shortcut_forcing_loss(zero, clean, None, None, flat, generator=torch.Generator().manual_seed(3))
    assert abs(stats["loss_flow"] - err[flow].mean().item()) < 1e-6
    with pytest.raises(ValueError, match="loss_weight"):
        shortcut_forcing_loss(zero, clean, None, None, dataclasses.replace(cfg, loss_weight="sqrt"))


def test_loss_finite_and_bounded_in_bf16_with_real_model():
    torch.manual_seed(0)
    cfg = DynamicsConfig(
        num_tokens=8, token_dim=4, pack=2, d_model=32, n_layers=4, n_heads=4, n_kv_heads=2, n_registers=2, k_max=64
    )
    model = WorldModel(cfg)
    clean = torch.rand(8, 6, 8, 4) * 2 - 1
    for seed in range(6):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, stats = shortcut_forcing_loss(
                model, clean, None, None, ObjectiveConfig(), generator=torch.Generator().manual_seed(seed)
            )
        assert math.isfinite(loss.item()) and stats["loss_raw"] < 10.0
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_rms_normalization_shares_the_flow_scale():
    from ahriuwu_core.training.loss_norm import RunningRMS

    clean = torch.rand(16, 5, 2, 3) * 2 - 1
    model = Recorder(scale=0.5)
    norm = RunningRMS()
    loss, stats = shortcut_forcing_loss(
        model, clean, None, None, ObjectiveConfig(), normalizer=norm, generator=torch.Generator().manual_seed(1)
    )
    flow, boot = stats["loss_flow"], stats["loss_bootstrap"]
    assert flow > 0 and boot > 0
    # first update: running RMS of the flow term == |flow|; the bootstrap term is divided by the same scale
    assert abs(loss.item() - (1.0 + boot / flow)) < 1e-5


def test_split_batch_with_summed_terms_has_the_full_batch_gradient():
    """Two halves (as two data-parallel ranks) with per-example generators and `reduce_sum`: the mean of their
    gradients and the RMS scale equal the full batch's, and their stats are the global-batch values."""
    from ahriuwu_core.training.loss_norm import RunningRMS
    from tests._dynamics import tiny

    clean = torch.rand(6, 4, 8, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def gens(lo, hi):
        return [torch.Generator().manual_seed(100 + g) for g in range(lo, hi)]

    def grads(model, loss):
        model.zero_grad()
        loss.backward()
        return torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None])

    model, norm = tiny(), RunningRMS()
    loss, stats = shortcut_forcing_loss(
        model, clean, None, None, ObjectiveConfig(), normalizer=norm, example_generators=gens(0, 6)
    )
    full = grads(model, loss)
    assert 0 < stats["bootstrap_fraction"] < 1

    halves = [(0, 3), (3, 6)]
    local = []  # first pass: each half's own sums, to form what an all-reduce returns
    for lo, hi in halves:
        shortcut_forcing_loss(
            model,
            clean[lo:hi],
            None,
            None,
            ObjectiveConfig(),
            example_generators=gens(lo, hi),
            reduce_sum=lambda t: local.append(t.clone()) or t,
        )
    total = local[0] + local[1]
    split, split_norms = [], []
    for lo, hi in halves:
        n = RunningRMS()
        loss, s = shortcut_forcing_loss(
            model,
            clean[lo:hi],
            None,
            None,
            ObjectiveConfig(),
            normalizer=n,
            example_generators=gens(lo, hi),
            reduce_sum=lambda t: total.clone(),
        )
        split.append(grads(model, loss))
        split_norms.append(n.rms("flow"))
        assert abs(s["loss_raw"] - stats["loss_raw"]) < 1e-6 * stats["loss_raw"]
        assert s["bootstrap_fraction"] == stats["bootstrap_fraction"]
    assert torch.allclose((split[0] + split[1]) / 2, full, rtol=1e-4, atol=1e-7)
    assert all(abs(r - norm.rms("flow")) < 1e-6 * r for r in split_norms)
    # Per-example means instead of global ones would not match: the halves carry unequal shares of flow frames.
    assert local[0][1] != local[1][1]
