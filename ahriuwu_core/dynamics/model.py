"""World model ("dynamics"): a block-causal transformer that x-predicts clean latent frames.

Each frame is a group of tokens: the tokenizer's latent tokens (optionally packed: p = s*s neighbouring grid
cells, an s x s block, become one token, (N, D) -> (N/p, p*D)), learned registers, one token for the signal level
tau and step size d, and one action token -- the action that led into this frame (`ahriuwu_core.data.conventions`).
Every layer attends within a frame (space; optionally with 2D RoPE over the token grid, so a shift looks the
same at every position); every `time_every`-th layer also attends causally across frames per token position
(time, RoPE over frame index). Paper convention: tau=0 pure noise, tau=1 clean.

`persistence_prior` (not in the paper; it pays off at small scale) feeds each frame's previous clean frame
(ground truth in training, the last generated or context frame in a rollout) beside its own input, and
x-predicts that previous frame plus the network's output, so the network only learns what changes. With
`prior_kernel` = k > 0 the previous frame is first mapped by an action-conditioned k x k linear filter
(`prior.ActionKernelPrior`, fitted by its own squared error in the objective): the guess follows the camera, and
the network learns what the filter misses. The model still x-predicts; the sampler is unchanged. With
`precondition` the output is the least-squares mix of the noisy input and that guess plus the network's output
scaled to the mix's error (`skip_coefficients`): at initialisation the model is that best simple predictor.

The model works on standardized latents: `latent_mean` / `latent_std` (per channel, buffers saved with the
weights, set from the training data) map tokenizer latents to unit scale. The noise schedule assumes unit-scale
signal: raw CNN latents have std ~0.14, so context noise 0.1 would bury half of every context frame.

For rollouts the time-attention keys/values of past frames are kept in a `KVCache`, so generating a frame
costs the same whatever the context length (apart from the tiny attention over cached keys).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..layers.norm import RMSNorm
from .blocks import Block, KVCache, Rotary, rope_table
from .config import DynamicsConfig
from .prior import ActionKernelPrior


def pack_tokens(z: torch.Tensor, cfg: DynamicsConfig) -> torch.Tensor:
    """(..., N, D) -> (..., N/p, p*D): s x s blocks of the token grid (raster runs of p when that is not possible)."""
    *lead, N, D = z.shape
    s = cfg.block_side
    if s <= 1:
        return z.reshape(*lead, N // cfg.pack, cfg.pack * D)
    g = math.isqrt(N)
    z = z.reshape(-1, g // s, s, g // s, s, D).permute(0, 1, 3, 2, 4, 5)
    return z.reshape(*lead, N // cfg.pack, cfg.pack * D)


def unpack_tokens(z: torch.Tensor, cfg: DynamicsConfig) -> torch.Tensor:
    """Inverse of `pack_tokens`."""
    *lead, n, pD = z.shape
    D, s = pD // cfg.pack, cfg.block_side
    if s <= 1:
        return z.reshape(*lead, n * cfg.pack, D)
    g = math.isqrt(n * cfg.pack)
    z = z.reshape(-1, g // s, g // s, s, s, D).permute(0, 1, 3, 2, 4, 5)
    return z.reshape(*lead, n * cfg.pack, D)


def token_grid_positions(cfg: DynamicsConfig) -> torch.Tensor:
    """(N/p, 2) float (row, column) of each packed token on the token grid, in units of tokens."""
    n = cfg.num_tokens // cfg.pack
    s = cfg.block_side
    if s >= 1:
        side = math.isqrt(cfg.num_tokens) // s
        i = torch.arange(n)
        return torch.stack([i // side, i % side], 1).float()
    g = math.isqrt(cfg.num_tokens)
    first = torch.arange(n) * cfg.pack  # raster runs: position of each run's first cell
    if g * g != cfg.num_tokens:
        return torch.stack([first.float() / cfg.pack, torch.zeros(n)], 1)
    return torch.stack([(first // g).float(), (first % g).float() / cfg.pack], 1)


def shift_previous(frames: torch.Tensor, first: torch.Tensor | None = None) -> torch.Tensor:
    """(B,T,...) -> per frame, the frame before it: `first` (B,1,...) or zeros, then frames[:, :-1]."""
    first = torch.zeros_like(frames[:, :1]) if first is None else first.to(frames.dtype)
    return torch.cat([first, frames[:, :-1]], 1)


TAU_OCTAVES = 8


def fourier_features(tau: torch.Tensor, n: int = TAU_OCTAVES) -> torch.Tensor:
    """(...) in [0, 1] -> (..., 2n+1): tau and sin/cos at octave frequencies pi*2^i (resolves 1/k_max grids)."""
    freqs = math.pi * 2.0 ** torch.arange(n, device=tau.device, dtype=torch.float32)
    ang = tau.float()[..., None] * freqs
    return torch.cat([tau.float()[..., None], ang.sin(), ang.cos()], -1)


def skip_coefficients(tau: torch.Tensor, change_var: torch.Tensor):
    """Preconditioning (EDM-style, in the paper's tau convention). With z = (1-tau)*noise + tau*x and a guess p of
    x whose error x - p has variance s2 (per channel, unit-variance noise), the least-squares linear estimate of x
    from (z, p) is p + c*(z - tau*p), c = tau*s2 / (tau^2*s2 + (1-tau)^2), and its error has standard deviation
    r = (1-tau)*sqrt(s2 / (tau^2*s2 + (1-tau)^2)). The model outputs that estimate plus r times the network's
    output, so at initialisation (zero output) it is the best simple predictor, and the network's target has unit
    scale at every tau. tau (B,T), change_var (D,) -> c, r, each (B,T,1,D)."""
    t = tau.float()[..., None, None]
    denom = t * t * change_var + (1 - t) ** 2
    return t * change_var / denom, (1 - t) * torch.sqrt(change_var / denom)


class WorldModel(nn.Module):
    def __init__(self, cfg: DynamicsConfig):
        super().__init__()
        self.cfg = cfg
        d, n_in = cfg.d_model, cfg.num_tokens // cfg.pack
        self.latent_in = nn.Linear(cfg.pack * cfg.token_dim * (2 if cfg.persistence_prior else 1), d)
        self.latent_pos_embed = nn.Parameter(torch.randn(n_in, d))
        self.register_tokens = nn.Parameter(torch.randn(cfg.n_registers, d))
        # noise token = base + MLP(fourier(tau)) + table[log2(1/d)]
        self.noise_token = nn.Parameter(torch.randn(d))
        self.tau_mlp = nn.Sequential(nn.Linear(2 * TAU_OCTAVES + 1, d), nn.SiLU(), nn.Linear(d, d))
        self.step_embed = nn.Embedding(int(math.log2(cfg.k_max)) + 1, d)
        # action token = base + sum_c table_c[a_c] (base alone when the frame has no action label)
        self.action_token = nn.Parameter(torch.randn(d))
        self.action_embed = nn.ModuleList(nn.Embedding(c, d) for c in cfg.action_num_classes)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        self.out_norm = RMSNorm(d)
        self.latent_out = nn.Linear(d, cfg.pack * cfg.token_dim)
        self.prior = (
            ActionKernelPrior(cfg.num_tokens, cfg.token_dim, cfg.action_num_classes, cfg.prior_kernel)
            if cfg.prior_kernel
            else None
        )
        self.register_buffer("latent_mean", torch.zeros(cfg.token_dim))
        self.register_buffer("latent_std", torch.ones(cfg.token_dim))
        if cfg.precondition:  # variance of (clean - prior guess) per channel, standardized (`set_change_var`)
            self.register_buffer("change_var", torch.ones(cfg.token_dim))
        self.register_buffer("space_pos", token_grid_positions(cfg), persistent=False)
        self._init_weights()

    @torch.no_grad()
    def set_latent_stats(self, latents: torch.Tensor, min_std: float = 1e-3) -> None:
        """Per-channel mean/std from sample latents (..., D); channels that barely vary are not blown up."""
        flat = latents.reshape(-1, latents.shape[-1]).float()
        self.latent_mean.copy_(flat.mean(0))
        self.latent_std.copy_(flat.std(0).clamp_min(min_std))

    @torch.no_grad()
    def set_change_var(self, clean: torch.Tensor, actions=None, has_actions=None, min_var: float = 1e-4) -> float:
        """Per-channel variance of each frame's error under the prior's guess, from standardized clean windows
        (B,T,N,D) with their actions; returns its mean."""
        guess = clean[:, :-1]
        if self.prior is not None:
            a = actions[:, 1:] if actions is not None else None
            h = has_actions[:, 1:] if has_actions is not None else None
            guess = self.prior(guess, a, h)
        err = (clean[:, 1:].float() - guess.float()).reshape(-1, clean.shape[-1])
        self.change_var.copy_(err.pow(2).mean(0).clamp_min(min_var))
        return float(self.change_var.mean())

    def standardize(self, z: torch.Tensor) -> torch.Tensor:
        """Tokenizer latents -> the model's unit-scale space (what training noises and the sampler outputs)."""
        return (z.float() - self.latent_mean) / self.latent_std

    def unstandardize(self, z: torch.Tensor) -> torch.Tensor:
        return z.float() * self.latent_std + self.latent_mean

    def _init_weights(self):
        # Every conditioning path starts alive: embeddings and learned tokens have unit scale (the residual
        # stream is pre-normed, so scale only sets their relative weight), linears are small but non-zero.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=m.in_features**-0.5)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=1.0)
        for blk in self.blocks:  # residual branch outputs scaled down with depth (stable deep stacks)
            outs = [blk.space_attn.out, blk.mlp.out] + ([blk.time_attn.out] if blk.has_time else [])
            for lin in outs:
                nn.init.normal_(lin.weight, std=lin.in_features**-0.5 / math.sqrt(2 * self.cfg.n_layers))
        if self.cfg.persistence_prior:  # start as the prior (or its preconditioned mix); the change is learnt from zero
            nn.init.zeros_(self.latent_out.weight)
        else:
            nn.init.normal_(self.latent_out.weight, std=0.1 * self.cfg.d_model**-0.5)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def embed(self, packed, prev, tau, step, actions, has_actions):
        cfg = self.cfg
        B, T = packed.shape[:2]
        feats = torch.cat([packed, prev], -1) if prev is not None else packed
        lat = self.latent_in(feats) + self.latent_pos_embed
        step_index = torch.log2(1.0 / step.float()).round().long().clamp(0, self.step_embed.num_embeddings - 1)
        noise = self.noise_token + self.tau_mlp(fourier_features(tau)) + self.step_embed(step_index)
        act = self.action_token.expand(B, T, -1)
        if actions is not None and has_actions is not None:
            if actions.shape[-1] != len(self.action_embed):
                raise ValueError(
                    f"WorldModel: actions have {actions.shape[-1]} components, model expects {len(self.action_embed)}"
                )
            # No clamping: a class outside the space is refused when the data is read (LatentWindows, evaluation),
            # and an index error here rather than a silently different action.
            label = sum(emb(actions[..., c].long() * has_actions.long()) for c, emb in enumerate(self.action_embed))
            act = act + label * has_actions[..., None].to(label.dtype)
        if cfg.action_to_latents:
            lat = lat + act[:, :, None]
        regs = self.register_tokens.expand(B, T, -1, -1)
        return torch.cat([lat, regs, noise[:, :, None], act[:, :, None]], 2)

    def forward(
        self,
        z,
        tau,
        step,
        actions=None,
        has_actions=None,
        cache: KVCache | None = None,
        commit: int = 0,
        isolated: torch.Tensor | None = None,
        previous: torch.Tensor | None = None,
        return_prior: bool = False,
    ):
        """z (B,T,N,D) noisy latents at signal level tau (B,T), step size d (B,T); actions (B,T,C) long,
        has_actions (B,T) bool; isolated (B,) bool marks single-image examples (no time attention across
        frames). With `cache`, the T frames follow the cache's committed frames, and the first `commit` of them
        join it (a peek commits none; a rollout commits a finished frame in the same pass as it peeks at the next).
        previous (B,T,N,D): each frame's previous clean frame in the model's standardized space (zeros for the
        first; `shift_previous`), read only by the persistence prior.
        Returns the x-prediction of the clean latents (B,T,N,D); with `return_prior`, also the prior's guess
        (B,T,N,D), which the objective fits to the clean frame."""
        cfg = self.cfg
        B, T, N, D = z.shape
        if N != cfg.num_tokens or D != cfg.token_dim:
            raise ValueError(
                f"WorldModel: latents have shape (N={N}, D={D}), model expects (N={cfg.num_tokens}, D={cfg.token_dim})"
            )
        if not 0 <= commit <= T or (commit and cache is None):
            raise ValueError(f"WorldModel: commit={commit} needs a cache and 0 <= commit <= T={T}")
        if cfg.precondition:  # unit-scale network input at every tau (z's variance is (1-tau)^2 + tau^2 var(x))
            t = tau.to(z.dtype)[..., None, None]
            packed = pack_tokens(z * torch.rsqrt((1 - t) ** 2 + t * t), cfg)
        else:
            packed = pack_tokens(z, cfg)
        prev = guess = None
        if cfg.persistence_prior:  # single-image examples must not see another frame, not even through the prior
            guess = previous.to(z.dtype) if previous is not None else torch.zeros_like(z)
            if isolated is not None:
                guess = guess * (~isolated).view(-1, 1, 1, 1).to(guess.dtype)
            if self.prior is not None:
                guess = self.prior(guess, actions, has_actions)
            prev = pack_tokens(guess, cfg)
        x = self.embed(packed, prev, tau, step, actions, has_actions)
        hd = cfg.d_model // cfg.n_heads
        past = cache.length if cache is not None else 0
        time_table = Rotary([rope_table(torch.arange(past, past + T, device=z.device), hd, cfg.rope_base)])
        space_tables = None
        if cfg.space_rope:  # the grid's tokens rotate by row and column; registers and the rest stay as they are
            grid = [rope_table(self.space_pos[:, i], hd // 2, cfg.space_rope_base) for i in (0, 1)]
            space_tables = Rotary(grid, length=x.shape[2])
        for blk in self.blocks:
            x = blk(x, time_table, isolated, cache, commit, space_tables)
        if cache is not None and commit:
            cache.length += commit
        out = self.latent_out(self.out_norm(x[:, :, : packed.shape[2]]))
        out = unpack_tokens(out, cfg).float()
        if cfg.precondition:  # the skip, plus the network's output scaled to the skip's error
            c, r = skip_coefficients(tau, self.change_var)
            g = guess.float()
            out = g + c * (z.float() - tau.float()[..., None, None] * g) + r * out
        elif guess is not None:
            out = out + guess.float()
        out = out.to(z.dtype)
        return (out, guess) if return_prior else out
