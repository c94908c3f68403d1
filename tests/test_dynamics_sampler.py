"""K-step sampler and rollout: re-noising from the model's own prediction, cache equivalence, causality,
and more steps never worse on a model trained on a toy sequence."""

import pytest
import torch

from ahriuwu_core.dynamics.config import DynamicsConfig
from ahriuwu_core.dynamics.model import WorldModel
from ahriuwu_core.dynamics.objective import ObjectiveConfig, shortcut_forcing_loss
from ahriuwu_core.dynamics.sampler import denoise, rollout, sample_frames
from tests._dynamics import TINY

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**over):
    torch.manual_seed(0)
    return WorldModel(DynamicsConfig(**{**TINY, **over})).eval()


def test_denoise_renoises_from_own_prediction_not_frozen_noise():
    c = torch.full((1, 1, 2, 2), 0.7)
    predict = lambda z, tau, step: 0.5 * z + c  # noqa: E731  x_hat depends on the current state
    K = 4
    out = denoise(None, predict, (1, 1, 2, 2), K, torch.Generator().manual_seed(0), "cpu")
    eps = torch.randn((1, 1, 2, 2), generator=torch.Generator().manual_seed(0))
    # reference written independently: implied noise of the current state, re-mixed at the next level
    z, frozen = eps.clone(), eps.clone()
    for k in range(K):
        tau, d = k / K, 1 / K
        x = 0.5 * z + c
        eps_hat = (z - tau * x) / (1 - tau)
        z = (1 - tau - d) * eps_hat + (tau + d) * x
        xf = 0.5 * frozen + c
        frozen = (1 - tau - d) * eps + (tau + d) * xf  # the old bug: frozen initial noise
    assert torch.allclose(out, z, atol=1e-6)
    assert not torch.allclose(out, frozen, atol=1e-3)  # the test can tell the two apart


def test_step_count_validation():
    model = tiny()
    ctx = torch.zeros(1, 2, 8, 4)
    for bad in (3, 16, 0):
        with pytest.raises(ValueError, match="sampling_steps"):
            rollout(model, ctx, None, None, 1, sampling_steps=bad)


VARIANTS = {  # the paper's design, and each small-scale option (16 tokens on a 4x4 grid for the 2D ones)
    "paper": {},
    "prior": dict(persistence_prior=True),
    "rope_blocks_actions": dict(
        num_tokens=16, pack=4, space_rope=True, action_to_latents=True, time_every=1, persistence_prior=True
    ),
    "mean_first_step": dict(persistence_prior=True, prior_kernel=3, num_tokens=16, mean_first_step=True),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_cached_rollout_equals_uncached_and_is_causal(variant):
    model = tiny(**VARIANTS[variant])
    torch.nn.init.normal_(model.latent_out.weight, std=0.05)  # the prior starts as an exact copy: as if trained
    N = model.cfg.num_tokens
    g = torch.Generator().manual_seed(0)
    ctx = torch.rand(2, 3, N, 4, generator=g) * 2 - 1
    acts = torch.randint(0, 5, (2, 7, 2), generator=g)
    has = torch.rand(2, 7, generator=g) < 0.7
    a = rollout(model, ctx, acts, has, 4, 4, generator=torch.Generator().manual_seed(1))
    b = rollout(model, ctx, acts, has, 4, 4, generator=torch.Generator().manual_seed(1), use_cache=False)
    assert a.shape == (2, 4, N, 4)
    assert torch.allclose(a, b, atol=1e-5)
    # changing future actions never changes frames generated before them
    acts2 = acts.clone()
    acts2[:, 5:] = (acts2[:, 5:] + 1) % 5
    c = rollout(model, ctx, acts2, has, 4, 4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a[:, :2], c[:, :2])
    assert (a[:, 2:] - c[:, 2:]).abs().max() > 1e-4


@pytest.mark.parametrize("mean_first_step", [False, True])
@pytest.mark.parametrize("use_cache", [True, False])
def test_the_prior_reads_each_generated_frames_conditional_mean_not_its_sample(use_cache, mean_first_step):
    model = tiny(**VARIANTS["prior"], mean_first_step=mean_first_step)
    torch.nn.init.normal_(model.latent_out.weight, std=0.05)
    calls, forward = [], model.forward

    def recording(z, tau, step, *args, previous=None, **kw):
        out = forward(z, tau, step, *args, previous=previous, **kw)
        calls.append((tau[:, -1].clone(), step[:, -1].clone(), previous[:, -1].clone(), out[:, -1].clone()))
        return out

    model.forward = recording
    g = torch.Generator().manual_seed(0)
    ctx = torch.rand(1, 3, model.cfg.num_tokens, 4, generator=g) * 2 - 1
    frames = model.standardize(
        rollout(model, ctx, None, None, 3, 4, generator=torch.Generator().manual_seed(1), use_cache=use_cache)
    )
    starts = [i for i, (tau, *_) in enumerate(calls) if tau.item() == 0.0]  # each frame's first step, from noise
    assert len(starts) == 3 and len(calls) - starts[0] == 3 * 4
    # the first prediction is queried at the finest step with mean_first_step, else at 1/K like the rest
    first_step = 1 / model.cfg.k_max if mean_first_step else 1 / 4
    for i in range(starts[0], len(calls)):
        assert calls[i][1].item() == pytest.approx(first_step if i in starts else 1 / 4)
    means = [calls[i][3] for i in starts]
    assert torch.allclose(calls[starts[0]][2], model.standardize(ctx)[:, -1])  # the first reads the context frame
    for h in (1, 2):
        for _, _, previous, _ in calls[starts[h] : starts[h] + 4]:
            assert torch.allclose(previous, means[h - 1], atol=1e-6)
        assert not torch.allclose(means[h - 1], frames[:, h - 1], atol=1e-3)  # the sample differs: a real test


def test_mean_first_step_steps_1_over_K_along_the_finest_steps_prediction():
    """The first prediction is queried at `first_step`; the state still moves by 1/K, and later steps use 1/K."""
    seen = []

    def predict(z, tau, step):
        seen.append(step.item())
        return 0.5 * z + 0.7 + step  # depends on the step size, so a wrong one changes the result

    K, eps = 4, torch.randn((1, 1, 2, 2), generator=torch.Generator().manual_seed(0))
    out = denoise(None, predict, (1, 1, 2, 2), K, torch.Generator().manual_seed(0), "cpu", first_step=1 / 64)
    assert seen == [1 / 64, 1 / 4, 1 / 4, 1 / 4]
    z = eps.clone()
    for k in range(K):  # reference: Euler steps of 1/K, x_hat queried at 1/64 only from pure noise
        tau, d = k / K, 1 / K
        x = 0.5 * z + 0.7 + (1 / 64 if k == 0 else d)
        z = x if k == K - 1 else z + d * (x - z) / (1 - tau)
    assert torch.allclose(out, z, atol=1e-6)


def test_more_steps_never_worse_on_toy_trained_model():
    """Toy data: every frame is +pattern or -pattern. One step can only return the mean (0, far from both
    modes); a working sampler commits to a mode as steps increase, so distance-to-data shrinks with K."""
    torch.manual_seed(0)
    model = WorldModel(DynamicsConfig(**{**TINY, "n_layers": 2}))
    pattern = 0.8 * torch.sign(torch.randn(8, 4, generator=torch.Generator().manual_seed(5)))

    def batch(i, B=32):
        sign = torch.randint(0, 2, (B, 1, 1, 1), generator=torch.Generator().manual_seed(i)) * 2 - 1
        return sign * pattern

    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    cfg = ObjectiveConfig(single_image_fraction=0.0)
    for i in range(130):
        loss, _ = shortcut_forcing_loss(
            model, batch(i), None, None, cfg, generator=torch.Generator().manual_seed(1000 + i)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    errors = {}
    for K in (1, 2, 4, 8):
        x = sample_frames(model, (64, 1, 8, 4), K, generator=torch.Generator().manual_seed(0))
        dist = torch.minimum((x - pattern).pow(2).mean((1, 2, 3)), (x + pattern).pow(2).mean((1, 2, 3)))
        errors[K] = float(dist.mean())
    for small, big in zip((1, 2, 4), (2, 4, 8)):
        assert errors[big] <= errors[small] * 1.05 + 1e-3, errors
    assert errors[8] < 0.3 * errors[1], errors


def test_rollout_takes_and_returns_tokenizer_scale_latents():
    """Context is standardized on the way in and frames are unstandardized on the way out: a model whose
    stats say 'mean 5, std 0.01' produces frames at that scale, and equal to the same model run on
    standardized context with identity stats."""
    model = tiny()
    g = torch.Generator().manual_seed(0)
    unit_ctx = torch.randn(2, 3, 8, 4, generator=g)
    raw_ctx = unit_ctx * 0.01 + 5.0
    model.latent_mean.fill_(5.0)
    model.latent_std.fill_(0.01)
    raw = rollout(model, raw_ctx, None, None, 2, 4, generator=torch.Generator().manual_seed(1))
    model.latent_mean.fill_(0.0)
    model.latent_std.fill_(1.0)
    unit = rollout(model, unit_ctx, None, None, 2, 4, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(raw, unit * 0.01 + 5.0, atol=1e-4)
    assert (raw - 5.0).abs().max() < 0.2


def test_windowed_cache_keeps_the_last_frames_and_sees_only_them():
    """KVCache(window=W): the cache never holds more than W frames, and (one layer, so a key is a function of its
    own frame) a peek equals the model run on just the last W frames -- RoPE makes positions relative."""
    from ahriuwu_core.dynamics.blocks import KVCache
    from ahriuwu_core.dynamics.sampler import Dreamer

    W, T = 3, 9
    model = tiny(n_layers=1, time_every=1)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, T + 1, 8, 4, generator=g)
    tau, step = torch.rand(1, T + 1, generator=g), torch.full((1, T + 1), 0.125)
    acts = torch.randint(0, 5, (1, T + 1, 2), generator=g)
    has = torch.ones(1, T + 1, dtype=torch.bool)
    with torch.no_grad():
        windowed, unbounded = KVCache(window=W), KVCache()
        for t in range(T):
            for cache in (windowed, unbounded):
                model(
                    z[:, t : t + 1],
                    tau[:, t : t + 1],
                    step[:, t : t + 1],
                    acts[:, t : t + 1],
                    has[:, t : t + 1],
                    cache=cache,
                    commit=1,
                )
            assert max(windowed.kept(i) for i in windowed.layers) == min(W, t + 1)
        assert windowed.length == unbounded.length == T
        peek = model(z[:, T:], tau[:, T:], step[:, T:], acts[:, T:], has[:, T:], cache=windowed)
        peek_all = model(z[:, T:], tau[:, T:], step[:, T:], acts[:, T:], has[:, T:], cache=unbounded)
        recent = model(z[:, T - W :], tau[:, T - W :], step[:, T - W :], acts[:, T - W :], has[:, T - W :])[:, -1:]
    assert torch.allclose(peek, recent, atol=1e-5)
    assert (peek - peek_all).abs().max() > 1e-4  # the window did drop something that mattered

    # a long rollout with a window: the cache stays at W frames however long it runs
    deep = tiny()
    dreamer = Dreamer(deep, 0.1, torch.Generator().manual_seed(0), window=W)
    dreamer.start(torch.randn(1, 2, 8, 4, generator=g))
    for _ in range(12):
        dreamer.step(torch.zeros(1, 1, 2, dtype=torch.long), sampling_steps=2)
        assert max(dreamer.cache.kept(i) for i in dreamer.cache.layers) <= W
    assert dreamer.cache.length == 2 + 11  # context + every frame but the last, which commits with the next
