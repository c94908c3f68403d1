"""K-step sampling and autoregressive rollout (paper convention: tau=0 noise, tau=1 clean).

Each frame starts from fresh noise at tau=0 and takes K steps of size d=1/K. Every step moves along the
velocity of the model's own current prediction, z <- z + d*(x_hat - z)/(1 - tau) -- equivalently re-noising
x_hat with the noise implied by the current state, never with the frozen initial noise. The last step lands
exactly on x_hat. Context goes in and frames come out as tokenizer latents; inside, everything is in the model's
standardized space. The finished frame is re-noised to the context level (tau = 1 - context_noise, the same
corruption the training objective applies to context frames) and committed to the KV cache.

With the persistence prior (`DynamicsConfig.persistence_prior`), the next frame's "previous clean frame" is the
generated frame's conditional mean (the sampler's first x_hat, from pure noise), not the sample. The prior
passes its input on almost unchanged, so a sample's own noise would be copied into every later frame and
compound (on the demo a K=64 rollout's latent spread grew from 0.157 to 0.417 in 16 frames; the data's is
0.148). The sample's detail still reaches later frames through the KV cache, noised to the context level as in
training.

`DynamicsConfig.mean_first_step` queries that first prediction at the finest step size 1/k_max instead of 1/K,
then steps 1/K along it. From pure noise the input says nothing about the frame, so the flow-trained finest step
predicts the conditional mean itself, while the coarse shortcut's prediction there is a partial sample trained
on few examples. Not in the paper; on the demo it moved K=4 0.1-0.2 dB closer to K=64 (`bench/RESULTS.md`).
"""

from __future__ import annotations

import torch

from ..training.precision import autocast_context
from .blocks import KVCache
from .model import shift_previous
from .objective import add_noise, flow_step


def _randn(shape, generator, device):
    gdev = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gdev).to(device)


def _check_steps(model, sampling_steps: int):
    k_max = model.cfg.k_max
    if sampling_steps < 1 or sampling_steps & (sampling_steps - 1) or sampling_steps > k_max:
        raise ValueError(
            f"sampling_steps={sampling_steps} must be a power of two in [1, k_max={k_max}] "
            "(only those step sizes are trained)"
        )


def first_step_size(model, sampling_steps: int) -> float:
    """The step size the sampler's first prediction (from pure noise) is queried at: 1/K, or 1/k_max with
    `mean_first_step`."""
    return 1.0 / model.cfg.k_max if model.cfg.mean_first_step else 1.0 / sampling_steps


def denoise(
    model,
    predict,
    shape,
    sampling_steps: int,
    generator,
    device,
    mean: bool = False,
    with_mean: bool = False,
    first_step: float | None = None,
):
    """Run the K-step sampler for one frame. `predict(z, tau, d) -> x_hat`, tau/d are (B,1) tensors.
    The first prediction, from pure noise (tau=0), is queried at step size `first_step` (default 1/K) and is the
    model's conditional mean of the frame. mean=True returns it instead of a sample -- blurrier, but free of
    sampling noise. with_mean=True returns (sample, mean); the mean costs nothing extra."""
    d = 1.0 / sampling_steps
    z = _randn(shape, generator, device)
    B = shape[0]
    x_hat = first = z
    for k in range(1 if mean else sampling_steps):
        tau = torch.full((B, 1), k * d, device=device)
        step = torch.full((B, 1), d, device=device)
        x_hat = predict(z, tau, step if k or first_step is None else torch.full_like(step, first_step)).float()
        if k == 0:
            first = x_hat
        z = x_hat if k == sampling_steps - 1 or mean else flow_step(z, tau, step, x_hat)
    return (z, first) if with_mean else z


class Dreamer:
    """A KV-cached rollout one frame at a time: `start` commits a context, each `step` generates the next frame.
    `rollout` runs on it, and so does interactive play, which picks each action as it goes.

    A finished frame joins the cache re-noised to the context level, in the same forward pass as the next
    frame's first denoising step (the model is causal over frames, so this equals a separate commit pass; it
    saves one pass per frame). `window` > 0 keeps only the last `window` committed frames in the cache (use
    the longest sequence the model was trained on, minus one): cost and memory per frame stay flat however long
    it runs."""

    def __init__(self, model, context_noise: float = 0.1, generator=None, window: int = 0):
        self.model, self.generator, self.window = model, generator, int(window)
        self.tau_ctx = 1.0 - float(context_noise)
        self.d_min = 1.0 / model.cfg.k_max
        self.cache: KVCache | None = None
        # The last frame as the persistence prior reads it (standardized): a context frame itself, a generated
        # frame's conditional mean -- see the module docstring.
        self.last_for_prior: torch.Tensor | None = None
        self.pending = None  # the last frame, noised, with its action and previous frame: committed next step

    def _cat_actions(self, a0, h0, a1, h1):
        """Two frames' actions side by side over time; a frame without one (None) becomes unlabelled."""
        if a0 is None and a1 is None:
            return None, None
        B, C = self.shape[0], len(self.model.cfg.action_num_classes)
        none = torch.zeros(B, 1, C, dtype=torch.long, device=self.device)
        unlabelled = torch.zeros(B, 1, dtype=torch.bool, device=self.device)
        return (
            torch.cat([none if a0 is None else a0, none if a1 is None else a1], 1),
            torch.cat([unlabelled if a0 is None else h0, unlabelled if a1 is None else h1], 1),
        )

    def _levels(self, B, T, device):
        return torch.full((B, T), self.tau_ctx, device=device), torch.full((B, T), self.d_min, device=device)

    @torch.inference_mode()
    def start(self, context: torch.Tensor, actions=None, has_actions=None) -> None:
        """context (B,Tc,N,D) tokenizer latents; actions (B,Tc,C) / has_actions (B,Tc) for its frames or None."""
        model, (B, Tc) = self.model, context.shape[:2]
        if actions is not None and has_actions is None:
            has_actions = torch.ones(actions.shape[:2], dtype=torch.bool, device=context.device)
        with autocast_context(context.device):
            clean = model.standardize(context)
            noisy = add_noise(
                clean, _randn(context.shape, self.generator, context.device), self._levels(B, Tc, context.device)[0]
            )
            self.cache = KVCache(self.window)
            if Tc:
                model(
                    noisy,
                    *self._levels(B, Tc, context.device),
                    actions,
                    has_actions,
                    cache=self.cache,
                    commit=Tc,
                    previous=shift_previous(clean),
                )
        self.last_for_prior = clean[:, -1:] if Tc else None
        self.pending = None
        self.shape = (B, 1, *context.shape[2:])
        self.device = context.device

    @torch.inference_mode()
    def step(self, action=None, has_action=None, sampling_steps: int = 4, mean: bool = False) -> torch.Tensor:
        """Generate one frame. action (B,1,C) long led into it, has_action (B,1) bool (None: all labelled;
        action None: unlabelled). Returns the frame (B,1,N,D) as tokenizer latents, float32."""
        if self.cache is None:
            raise RuntimeError("Dreamer.step before start")
        _check_steps(self.model, sampling_steps)
        model, B, device = self.model, self.shape[0], self.device
        if action is not None and has_action is None:
            has_action = torch.ones(action.shape[:2], dtype=torch.bool, device=device)
        pending, self.pending = self.pending, None
        with autocast_context(device):

            def predict(z, tau, step):
                nonlocal pending
                if pending is None:
                    return model(z, tau, step, action, has_action, cache=self.cache, previous=self.last_for_prior)
                noisy, p_action, p_has, p_previous = pending
                pending = None
                tau_p, step_p = self._levels(B, 1, device)
                out = model(
                    torch.cat([noisy, z], 1),
                    torch.cat([tau_p, tau], 1),
                    torch.cat([step_p, step], 1),
                    *self._cat_actions(p_action, p_has, action, has_action),
                    cache=self.cache,
                    commit=1,
                    previous=torch.cat([p_previous, self.last_for_prior], 1),
                )
                return out[:, 1:]

            x, first = denoise(
                model,
                predict,
                self.shape,
                sampling_steps,
                self.generator,
                device,
                mean,
                True,
                first_step_size(model, sampling_steps),
            )
            noisy = add_noise(x, _randn(x.shape, self.generator, device), self._levels(B, 1, device)[0])
        previous = self.last_for_prior if self.last_for_prior is not None else torch.zeros_like(x)
        self.pending = (noisy, action, has_action, previous)
        self.last_for_prior = first
        return model.unstandardize(x)


@torch.no_grad()
def rollout(
    model,
    context,
    actions,
    has_actions,
    horizon: int,
    sampling_steps: int = 4,
    context_noise: float = 0.1,
    generator=None,
    use_cache: bool = True,
    mean: bool = False,
) -> torch.Tensor:
    """Generate `horizon` frames after `context` (B,Tc,N,D). actions (B,Tc+H,C) long, has_actions (B,Tc+H)
    bool (None -> unlabelled); `actions[:, t]` led into frame t (`conventions`). With use_cache=False every
    step reruns the whole sequence (reference path; same random draws, same result). mean=True commits the
    conditional-mean readout (see `denoise`) instead of a sample. Returns (B,H,N,D) float32."""
    _check_steps(model, sampling_steps)
    B, Tc, N, D = context.shape
    total = Tc + horizon
    if actions is not None and actions.shape[1] < total:
        raise ValueError(f"rollout: actions cover {actions.shape[1]} frames, need context+horizon={total}")
    if has_actions is None and actions is not None:
        has_actions = torch.ones(actions.shape[:2], dtype=torch.bool, device=context.device)
    if not use_cache:
        with autocast_context(context.device):  # bf16 on CUDA, plain fp32 on CPU
            return _uncached_rollout(
                model, context, actions, has_actions, horizon, sampling_steps, context_noise, generator, mean
            )
    if not horizon:
        return context.new_zeros(B, 0, N, D).float()
    dreamer = Dreamer(model, context_noise, generator)

    def act(t0, t1):
        return (None, None) if actions is None else (actions[:, t0:t1], has_actions[:, t0:t1])

    dreamer.start(context, *act(0, Tc))
    return torch.cat([dreamer.step(*act(t, t + 1), sampling_steps, mean) for t in range(Tc, total)], 1)


def _uncached_rollout(model, context, actions, has_actions, horizon, sampling_steps, context_noise, generator, mean):
    """The reference: every step reruns the whole sequence so far (the same random draws as `Dreamer`)."""
    B, Tc, N, D = context.shape
    device = context.device
    d_min = 1.0 / model.cfg.k_max
    tau_ctx = 1.0 - context_noise

    def ctx_levels(T):
        return torch.full((B, T), tau_ctx, device=device), torch.full((B, T), d_min, device=device)

    prior_history = model.standardize(context)  # what the prior reads: context frames, then generated frames' means
    history = add_noise(prior_history, _randn(context.shape, generator, device), ctx_levels(Tc)[0])
    frames = []
    for h in range(horizon):
        t = Tc + h
        a_all, h_all = (None, None) if actions is None else (actions[:, : t + 1], has_actions[:, : t + 1])

        def predict(z, tau, step):
            tau_all = torch.cat([ctx_levels(t)[0], tau], 1)  # noqa: B023
            step_all = torch.cat([ctx_levels(t)[1], step], 1)  # noqa: B023
            previous = shift_previous(torch.cat([prior_history, z], 1))  # noqa: B023
            return model(torch.cat([history, z], 1), tau_all, step_all, a_all, h_all, previous=previous)[:, -1:]  # noqa: B023

        x, first = denoise(
            model,
            predict,
            (B, 1, N, D),
            sampling_steps,
            generator,
            device,
            mean,
            True,
            first_step_size(model, sampling_steps),
        )
        frames.append(x)
        noisy = add_noise(x, _randn(x.shape, generator, device), ctx_levels(1)[0])
        history, prior_history = torch.cat([history, noisy], 1), torch.cat([prior_history, first], 1)
    return model.unstandardize(torch.cat(frames, 1)) if frames else context.new_zeros(B, 0, N, D)


@torch.no_grad()
def sample_frames(
    model, z_shape, sampling_steps: int, actions=None, has_actions=None, generator=None, device="cpu"
) -> torch.Tensor:
    """Sample (B,1,N,D) frames (tokenizer latents) with no context (image prior), for quick checks."""
    _check_steps(model, sampling_steps)
    return model.unstandardize(
        denoise(
            model,
            lambda z, tau, step: model(z, tau, step, actions, has_actions),
            z_shape,
            sampling_steps,
            generator,
            device,
            first_step=first_step_size(model, sampling_steps),
        )
    )
