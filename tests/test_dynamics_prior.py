"""The action-kernel prior: starts as persistence, learns an action's camera shift, and is fitted by the objective."""

from dataclasses import replace

import pytest
import torch

from ahriuwu_core.dynamics.config import DynamicsConfig
from ahriuwu_core.dynamics.model import WorldModel
from ahriuwu_core.dynamics.objective import ObjectiveConfig, shortcut_forcing_loss
from ahriuwu_core.dynamics.prior import ActionKernelPrior, fit_least_squares, prior_error


def shifted(grid: torch.Tensor, move: torch.Tensor) -> torch.Tensor:
    """(M, g, g, D) grids moved by one cell: move 0 still, 1 right, 2 down (the edge cell repeats)."""
    out = grid.clone()
    right, down = move == 1, move == 2
    out[right, :, 1:] = grid[right, :, :-1]
    out[down, 1:] = grid[down, :-1]
    return out


def test_the_prior_starts_as_persistence_and_ignores_actions_on_unlabelled_frames():
    prior = ActionKernelPrior(64, 4, (3, 2), kernel=3)
    prev = torch.randn(2, 5, 64, 4)
    actions = torch.randint(0, 2, (2, 5, 2))
    assert torch.equal(prior(prev, actions, torch.ones(2, 5, dtype=torch.bool)), prev)
    with torch.no_grad():
        for table in prior.prior_action:
            table.normal_()
    unlabelled = torch.zeros(2, 5, dtype=torch.bool)
    a = prior(prev, actions, unlabelled)
    b = prior(prev, torch.randint(0, 2, (2, 5, 2)), unlabelled)
    assert torch.equal(a, b)  # the base (no-action) filter alone
    assert not torch.equal(a, prior(prev, actions, ~unlabelled))


def test_the_least_squares_fit_finds_each_actions_shift_and_predicts_frames_it_never_saw():
    """Two action components, unlabelled frames, windows of several frames: the closed-form fit recovers a
    one-cell scroll per class of the first component (the second does nothing), on frames it never saw."""
    torch.manual_seed(0)
    g, D, B, T = 6, 3, 24, 4
    prior = ActionKernelPrior(g * g, D, (3, 2), kernel=3)
    frames = [torch.randn(B, g, g, D)]
    move = torch.randint(0, 3, (B, T, 1))
    actions = torch.cat([move, torch.randint(0, 2, (B, T, 1))], -1)
    has = torch.rand(B, T) < 0.8
    for t in range(1, T):  # unlabelled frames stand still: the base filter's job
        frames.append(shifted(frames[-1], torch.where(has[:, t], move[:, t, 0], 0)))
    frames = torch.stack(frames, 1).reshape(B, T, g * g, D)
    start = float((frames[:, 1:] - frames[:, :-1]).pow(2).mean())
    mse = fit_least_squares(prior, frames, actions, has, ridge=1e-6)
    assert start > 0.3 and mse < 1e-4 * start, (start, mse)
    # unseen frames with the same rules are predicted too: the fit is the rule, not the sample
    test = torch.randn(8, 1, g * g, D)
    for m in range(3):
        a = torch.tensor([[[m, 1]]]).expand(8, 1, 2)
        want = shifted(test.view(8, g, g, D), torch.full((8,), m)).view(8, 1, g * g, D)
        with torch.no_grad():
            assert float((prior(test, a, torch.ones(8, 1, dtype=torch.bool)) - want).pow(2).mean()) < 1e-3


def test_the_prior_learns_each_actions_shift_from_its_own_error():
    """A one-cell scroll per action is exactly a 3x3 filter: fitting the prior's squared error finds it."""
    torch.manual_seed(0)
    g, D = 8, 4
    prior = ActionKernelPrior(g * g, D, (3,), kernel=3)
    opt = torch.optim.Adam(prior.parameters(), lr=1e-2)
    valid = torch.ones(16, 1, dtype=torch.bool)

    def batch():
        grid = torch.randn(16, g, g, D)
        move = torch.randint(0, 3, (16,))
        return grid.view(16, 1, g * g, D), move.view(16, 1, 1), shifted(grid, move).view(16, 1, g * g, D)

    prev, move, target = batch()
    start = prior_error(prev, target, valid)[0] / 16
    for _ in range(300):
        prev, move, target = batch()
        loss = prior_error(prior(prev, move, torch.ones(16, 1, dtype=torch.bool)), target, valid)[0] / 16
        opt.zero_grad()
        loss.backward()
        opt.step()
    prev, move, target = batch()
    with torch.no_grad():
        end = prior_error(prior(prev, move, torch.ones(16, 1, dtype=torch.bool)), target, valid)[0] / 16
    assert start > 0.5 and end < 0.01 * start, (float(start), float(end))


def test_the_objective_fits_the_prior_and_reports_its_error_apart():
    cfg = DynamicsConfig(
        num_tokens=16,
        token_dim=4,
        pack=1,
        d_model=32,
        n_layers=2,
        n_heads=2,
        n_kv_heads=1,
        n_registers=1,
        action_num_classes=(3,),
        k_max=4,
        persistence_prior=True,
        prior_kernel=3,
    )
    torch.manual_seed(0)
    model = WorldModel(cfg)
    clean = torch.randn(2, 4, 16, 4)
    actions = torch.randint(0, 3, (2, 4, 1))
    has = torch.ones(2, 4, dtype=torch.bool)
    gen = torch.Generator().manual_seed(0)
    loss, stats = shortcut_forcing_loss(
        model, clean, actions, has, ObjectiveConfig(single_image_fraction=0.0), generator=gen
    )
    loss.backward()
    assert stats["loss_prior"] > 0
    assert stats["loss_raw"] == pytest.approx(sum(v for k, v in stats.items() if k in ("loss_flow", "loss_bootstrap")))
    assert model.prior.prior_base.grad.abs().sum() > 0
    assert model.prior.prior_action[0].grad.abs().sum() > 0


def test_prior_kernel_configuration_errors_name_the_cause():
    with pytest.raises(ValueError, match="prior_kernel needs persistence_prior"):
        DynamicsConfig(prior_kernel=3)
    with pytest.raises(ValueError, match="do not form a square grid"):
        WorldModel(replace(DynamicsConfig(num_tokens=32, persistence_prior=True, prior_kernel=3)))
    with pytest.raises(ValueError, match="must be odd"):
        ActionKernelPrior(64, 4, (3,), kernel=2)
