"""K-step sampling and autoregressive rollout (paper convention: tau=0 noise, tau=1 clean).

Each frame starts from fresh noise at tau=0 and takes K steps of size d=1/K. Every step moves along the
velocity of the model's own current prediction, z <- z + d*(x_hat - z)/(1 - tau) -- equivalently re-noising
x_hat with the noise implied by the current state, never with the frozen initial noise. The last step lands
exactly on x_hat. Context goes in and frames come out as tokenizer latents; inside, everything is in the model's
standardized space. The finished frame is re-noised to the context level (tau = 1 - context_noise, the same
corruption the training objective applies to context frames) and committed to the KV cache.
"""
from __future__ import annotations


import torch

from ..training import autocast_context
from .model import KVCache, shift_previous
from .objective import add_noise, flow_step


def _randn(shape, generator, device):
    gdev = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gdev).to(device)


def _check_steps(model, sampling_steps: int):
    k_max = model.cfg.k_max
    if sampling_steps < 1 or sampling_steps & (sampling_steps - 1) or sampling_steps > k_max:
        raise ValueError(f"sampling_steps={sampling_steps} must be a power of two in [1, k_max={k_max}] "
                         "(only those step sizes are trained)")


def denoise(model, predict, shape, sampling_steps: int, generator, device, mean: bool = False) -> torch.Tensor:
    """Run the K-step sampler for one frame. `predict(z, tau, d) -> x_hat`, tau/d are (B,1) tensors.
    mean=True returns the first step's x_hat instead: the prediction from pure noise (tau=0), i.e. the model's
    conditional mean of the frame -- blurrier than a sample, but free of sampling noise."""
    d = 1.0 / sampling_steps
    z = _randn(shape, generator, device)
    B = shape[0]
    x_hat = z
    for k in range(1 if mean else sampling_steps):
        tau = torch.full((B, 1), k * d, device=device)
        step = torch.full((B, 1), d, device=device)
        x_hat = predict(z, tau, step).float()
        z = x_hat if k == sampling_steps - 1 or mean else flow_step(z, tau, step, x_hat)
    return z


@torch.no_grad()
def rollout(model, context, actions, has_actions, horizon: int, sampling_steps: int = 4,
            context_noise: float = 0.1, generator=None, use_cache: bool = True, mean: bool = False) -> torch.Tensor:
    """Generate `horizon` frames after `context` (B,Tc,N,D). actions (B,Tc+H,C) long, has_actions (B,Tc+H)
    bool (None -> unlabelled); `actions[:, t]` led into frame t (`conventions`). With use_cache=False every
    step reruns the whole sequence (reference path; same random draws, same result). mean=True commits the
    conditional-mean readout (see `denoise`) instead of a sample. Returns (B,H,N,D) float32."""
    _check_steps(model, sampling_steps)
    with autocast_context(context.device):  # bf16 on CUDA, plain fp32 on CPU
        return _rollout(model, context, actions, has_actions, horizon, sampling_steps, context_noise, generator,
                        use_cache, mean)


def _rollout(model, context, actions, has_actions, horizon, sampling_steps, context_noise, generator, use_cache,
             mean=False):
    B, Tc, N, D = context.shape
    device = context.device
    total = Tc + horizon
    if actions is not None and actions.shape[1] < total:
        raise ValueError(f"rollout: actions cover {actions.shape[1]} frames, need context+horizon={total}")
    if has_actions is None and actions is not None:
        has_actions = torch.ones(actions.shape[:2], dtype=torch.bool, device=device)
    d_min = 1.0 / model.cfg.k_max
    tau_ctx = 1.0 - context_noise

    def act(t0, t1):
        if actions is None:
            return None, None
        return actions[:, t0:t1], has_actions[:, t0:t1]

    def ctx_levels(T):
        return torch.full((B, T), tau_ctx, device=device), torch.full((B, T), d_min, device=device)

    ctx_clean = model.standardize(context)
    ctx_noisy = add_noise(ctx_clean, _randn(context.shape, generator, device), ctx_levels(Tc)[0])
    cache = KVCache() if use_cache else None
    if use_cache and Tc:
        model(ctx_noisy, *ctx_levels(Tc), *act(0, Tc), cache=cache, update_cache=True,
              previous=shift_previous(ctx_clean))
    history, clean_history = ctx_noisy, ctx_clean  # the uncached path reruns these
    last_clean = ctx_clean[:, -1:] if Tc else None  # each new frame's "previous clean frame"
    frames = []
    for h in range(horizon):
        t = Tc + h
        a_t, h_t = act(t, t + 1)
        if use_cache:
            def predict(z, tau, step):
                return model(z, tau, step, a_t, h_t, cache=cache, previous=last_clean)
        else:
            a_all, h_all = act(0, t + 1)

            def predict(z, tau, step):
                tau_all = torch.cat([ctx_levels(t)[0], tau], 1)
                step_all = torch.cat([ctx_levels(t)[1], step], 1)
                previous = shift_previous(torch.cat([clean_history, z], 1))
                return model(torch.cat([history, z], 1), tau_all, step_all, a_all, h_all, previous=previous)[:, -1:]
        x = denoise(model, predict, (B, 1, N, D), sampling_steps, generator, device, mean)
        frames.append(x)
        noisy = add_noise(x, _randn(x.shape, generator, device), ctx_levels(1)[0])
        if use_cache:
            model(noisy, *ctx_levels(1), a_t, h_t, cache=cache, update_cache=True, previous=last_clean)
        else:
            history, clean_history = torch.cat([history, noisy], 1), torch.cat([clean_history, x], 1)
        last_clean = x
    return model.unstandardize(torch.cat(frames, 1)) if frames else context.new_zeros(B, 0, N, D)


@torch.no_grad()
def sample_frames(model, z_shape, sampling_steps: int, actions=None, has_actions=None, generator=None,
                  device="cpu") -> torch.Tensor:
    """Sample (B,1,N,D) frames (tokenizer latents) with no context (image prior), for quick checks."""
    _check_steps(model, sampling_steps)
    return model.unstandardize(denoise(model, lambda z, tau, step: model(z, tau, step, actions, has_actions),
                                       z_shape, sampling_steps, generator, device))
