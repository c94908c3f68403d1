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
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.norm import RMSNorm
from .prior import ActionKernelPrior


@dataclass
class DynamicsConfig:
    num_tokens: int = 64  # N latent tokens per frame (from the tokenizer)
    token_dim: int = 16  # D channels per latent token
    pack: int = 1  # p: (N, D) -> (N/p, p*D) tokens fed to the transformer
    d_model: int = 256
    n_layers: int = 8
    n_heads: int = 4
    n_kv_heads: int = 2  # grouped-query attention: n_heads / n_kv_heads query heads share a K/V head
    time_every: int = 4  # layer i has time attention iff i % time_every == time_every - 1
    n_registers: int = 4
    action_num_classes: tuple = (9, 5)
    k_max: int = 64  # finest step size 1/k_max (a power of two)
    max_frames: int = 64  # longest sequence the model is meant for (RoPE handles any length)
    mlp_ratio: float = 8 / 3  # SwiGLU hidden = mlp_ratio * d_model (rounded up to a multiple of 16)
    attn_softcap: float = 50.0  # attention logit soft-capping cap*tanh(s/cap); 0 disables (fused SDPA)
    rope_base: float = 10000.0
    space_rope: bool = False  # 2D RoPE over the latent token grid in space attention
    space_rope_base: float = 100.0
    persistence_prior: bool = False  # x_hat(t) = clean(t-1) + output; clean(t-1) is also an input
    prior_kernel: int = 0  # > 0 (with persistence_prior): clean(t-1) through a k x k action-chosen filter
    action_to_latents: bool = False  # also add the frame's action embedding to each of its latent tokens
    mean_first_step: bool = False  # the sampler's first step (from pure noise) predicts at the finest step
    # size: the conditional mean, which the prior reads (`sampler`)
    precondition: bool = False  # (with persistence_prior) output = the best linear guess from the noisy input
    # and the prior, plus the network's scaled correction (`skip_coefficients`)

    def __post_init__(self):
        self.action_num_classes = tuple(int(c) for c in self.action_num_classes)
        if self.prior_kernel and not self.persistence_prior:
            raise ValueError("DynamicsConfig: prior_kernel needs persistence_prior=True")
        if self.precondition and not self.persistence_prior:
            raise ValueError("DynamicsConfig: precondition needs persistence_prior=True")
        if self.num_tokens % self.pack:
            raise ValueError(f"DynamicsConfig: num_tokens={self.num_tokens} not divisible by pack={self.pack}")
        if self.d_model % self.n_heads or self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"DynamicsConfig: need d_model % n_heads == 0 and n_heads % n_kv_heads == 0 "
                f"(d_model={self.d_model}, n_heads={self.n_heads}, n_kv_heads={self.n_kv_heads})"
            )
        if self.k_max < 1 or self.k_max & (self.k_max - 1):
            raise ValueError(f"DynamicsConfig: k_max={self.k_max} must be a power of two")
        if (self.d_model // self.n_heads) % 2:
            raise ValueError("DynamicsConfig: head dim must be even for RoPE")

    @property
    def tokens_per_frame(self) -> int:
        return self.num_tokens // self.pack + self.n_registers + 2

    def is_time_layer(self, i: int) -> bool:
        return i % self.time_every == self.time_every - 1

    @property
    def block_side(self) -> int:
        """s when tokens form a square g x g grid and pack = s*s divides it into blocks; 0 = raster packing."""
        g, s = math.isqrt(self.num_tokens), math.isqrt(self.pack)
        return s if g * g == self.num_tokens and s * s == self.pack and g % s == 0 else 0


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


def rope_table(pos: torch.Tensor, dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin (L, dim/2) of angles pos (L,) * base^(-i/(dim/2)): computed once per forward, used by every layer."""
    half = dim // 2
    freqs = base ** (-torch.arange(half, device=pos.device, dtype=torch.float32) / half)
    ang = pos.float()[:, None] * freqs[None]
    return ang.cos(), ang.sin()


def apply_rope(x: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate (..., L, dim) by a `rope_table` (half-split layout)."""
    cos, sin = table
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half].float(), x[..., half:].float()
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).to(x.dtype)


def apply_rope_2d(x: torch.Tensor, rows, cols) -> torch.Tensor:
    """Rotate the first n tokens of (..., L, hd), n = the tables' length: half the head dim by row, half by column."""
    n, half = rows[0].shape[0], x.shape[-1] // 2
    head = torch.cat([apply_rope(x[..., :n, :half], rows), apply_rope(x[..., :n, half:], cols)], -1)
    return torch.cat([head, x[..., n:, :]], -2)


def attend(q, k, v, mask, softcap: float):
    """q (M,h,L,hd), k/v (M,kvh,Lk,hd), mask bool broadcastable to (M,1,L,Lk) (True = may attend)."""
    if softcap <= 0:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    M, h, L, hd = q.shape
    rep = h // k.shape[1]
    # grouped queries without copying K/V: the `rep` query heads sharing a K/V head become `rep` blocks of rows
    q = q.reshape(M, k.shape[1], rep * L, hd)
    scores = (q @ k.transpose(-1, -2)) * hd**-0.5
    scores = softcap * torch.tanh(scores.float() / softcap)
    if mask is not None:
        scores = scores.masked_fill(~(mask.repeat(1, 1, rep, 1) if rep > 1 else mask), float("-inf"))
    return (torch.softmax(scores, -1).to(v.dtype) @ v).view(M, h, L, hd)


class Attention(nn.Module):
    """Multi-head attention with grouped-query K/V, QK-norm and logit soft-capping."""

    def __init__(self, cfg: DynamicsConfig):
        super().__init__()
        self.h, self.kvh, self.hd = cfg.n_heads, cfg.n_kv_heads, cfg.d_model // cfg.n_heads
        self.softcap = cfg.attn_softcap
        self.q = nn.Linear(cfg.d_model, self.h * self.hd, bias=False)
        self.kv = nn.Linear(cfg.d_model, 2 * self.kvh * self.hd, bias=False)
        self.out = nn.Linear(self.h * self.hd, cfg.d_model, bias=False)
        self.q_norm, self.k_norm = RMSNorm(self.hd), RMSNorm(self.hd)

    def qkv(self, x):  # x (M, L, d) -> q (M,h,L,hd), k, v (M,kvh,L,hd)
        M, L, _ = x.shape
        q = self.q_norm(self.q(x).view(M, L, self.h, self.hd)).transpose(1, 2)
        k, v = self.kv(x).view(M, L, 2, self.kvh, self.hd).unbind(2)
        return q, self.k_norm(k).transpose(1, 2), v.transpose(1, 2)

    def merge(self, y):  # (M,h,L,hd) -> (M,L,d)
        M, _, L, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(M, L, self.h * self.hd))


class SwiGLU(nn.Module):
    def __init__(self, cfg: DynamicsConfig):
        super().__init__()
        hidden = 16 * math.ceil(cfg.mlp_ratio * cfg.d_model / 16)
        self.gate_up = nn.Linear(cfg.d_model, 2 * hidden, bias=False)
        self.out = nn.Linear(hidden, cfg.d_model, bias=False)

    def forward(self, x):
        gate, up = self.gate_up(x).chunk(2, -1)
        return self.out(F.silu(gate) * up)


class KVCache:
    """Time-attention keys/values of committed past frames, per time layer: (B*S, kvh, T_kept, hd).

    `window` > 0 keeps only the last `window` frames (a sliding context of the length the model was trained
    on): memory and per-frame cost stay flat however long a rollout runs. RoPE makes attention depend only on
    frame distances, so the kept keys keep their absolute positions and nothing is re-rotated."""

    def __init__(self, window: int = 0):
        self.layers: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.length = 0  # number of frames committed so far (the next frame's position)
        self.window = int(window)

    def kept(self, index: int) -> int:
        """Frames held for time layer `index`."""
        return self.layers[index][0].shape[2] if index in self.layers else 0

    def store(self, index: int, k: torch.Tensor, v: torch.Tensor) -> None:
        if self.window > 0 and k.shape[2] > self.window:
            k, v = k[:, :, -self.window :].contiguous(), v[:, :, -self.window :].contiguous()
        self.layers[index] = (k, v)


class Block(nn.Module):
    def __init__(self, cfg: DynamicsConfig, index: int):
        super().__init__()
        self.cfg, self.index = cfg, index
        self.has_time = cfg.is_time_layer(index)
        if self.has_time:
            self.time_norm, self.time_attn = RMSNorm(cfg.d_model), Attention(cfg)
        self.space_norm, self.space_attn = RMSNorm(cfg.d_model), Attention(cfg)
        self.mlp_norm, self.mlp = RMSNorm(cfg.d_model), SwiGLU(cfg)

    def time_attention(self, x, isolated, cache: KVCache | None, commit: int, time_table):
        B, T, S, d = x.shape
        h = self.time_norm(x).permute(0, 2, 1, 3).reshape(B * S, T, d)
        q, k, v = self.time_attn.qkv(h)
        past = cache.length if cache is not None else 0
        kept = cache.kept(self.index) if cache is not None else 0
        pos = torch.arange(past, past + T, device=x.device)
        q, k = apply_rope(q, time_table), apply_rope(k, time_table)
        if kept:
            pk, pv = cache.layers[self.index]
            k, v = torch.cat([pk, k], 2), torch.cat([pv, v], 2)
        if cache is not None and commit:
            cache.store(self.index, k[:, :, : kept + commit], v[:, :, : kept + commit])
        qi = pos[:, None]
        ki = torch.arange(past - kept, past + T, device=x.device)[None, :]
        mask = (ki <= qi)[None, None]  # causal over frames
        if isolated is not None and isolated.any():  # single-image examples see only their own frame
            own = (ki == qi)[None, None]
            L = kept + T
            mask = torch.where(isolated.view(B, 1, 1, 1, 1), own, mask[None]).expand(B, S, 1, T, L)
            mask = mask.reshape(B * S, 1, T, L)
        y = self.time_attn.merge(attend(q, k, v, mask, self.time_attn.softcap))
        return x + y.view(B, S, T, d).permute(0, 2, 1, 3)

    def forward(self, x, time_table, isolated=None, cache=None, commit=0, space_tables=None):
        if self.has_time:
            x = self.time_attention(x, isolated, cache, commit, time_table)
        B, T, S, d = x.shape
        q, k, v = self.space_attn.qkv(self.space_norm(x).reshape(B * T, S, d))
        if space_tables is not None:
            q, k = apply_rope_2d(q, *space_tables), apply_rope_2d(k, *space_tables)
        x = x + self.space_attn.merge(attend(q, k, v, None, self.space_attn.softcap)).view(B, T, S, d)
        return x + self.mlp(self.mlp_norm(x))


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
        time_table = rope_table(torch.arange(past, past + T, device=z.device), hd, cfg.rope_base)
        space_tables = None
        if cfg.space_rope:
            space_tables = tuple(rope_table(self.space_pos[:, i], hd // 2, cfg.space_rope_base) for i in (0, 1))
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
