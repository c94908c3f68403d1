"""The world model's transformer layers: RoPE (over frames, and optionally 2D over the token grid), grouped-query
attention with QK-norm and logit soft-capping, SwiGLU, the rollout's key/value cache, and the block that runs
space attention in every layer and causal time attention in every `time_every`-th."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.norm import RMSNorm
from .config import DynamicsConfig


def rope_table(pos: torch.Tensor, dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin (L, dim/2) of angles pos (L,) * base^(-i/(dim/2))."""
    half = dim // 2
    freqs = base ** (-torch.arange(half, device=pos.device, dtype=torch.float32) / half)
    ang = pos.float()[:, None] * freqs[None]
    return ang.cos(), ang.sin()


class Rotary:
    """A RoPE rotation of the last dim of (..., L, dim), built once per forward and used by every layer.

    The dim is `groups` blocks, each rotated in half-split layout ([a, b] -> [a cos - b sin, a sin + b cos]) by
    its own table: one group over frames, two over the token grid (half the head dim by row, half by column).
    Written as x * cos + swap(x) * sin over the whole dim, a few kernels per call: on CPU, play's per-frame cost
    is mostly the dispatch of small ops. Positions past the tables' length (register and other tokens) are left
    as they are."""

    def __init__(self, tables: list[tuple[torch.Tensor, torch.Tensor]], length: int | None = None):
        self.groups = len(tables)
        cos = torch.cat([torch.cat([c, c], -1) for c, _ in tables], -1)
        sin = torch.cat([torch.cat([-s, s], -1) for _, s in tables], -1)
        n = cos.shape[0]
        if length is not None and length > n:  # identity rows: cos 1, sin 0
            cos = torch.cat([cos, cos.new_ones(length - n, cos.shape[1])])
            sin = torch.cat([sin, sin.new_zeros(length - n, sin.shape[1])])
        self.cos, self.sin = cos, sin

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        swapped = xf.unflatten(-1, (self.groups, 2, -1)).flip(-2).flatten(-3)
        return (xf * self.cos + swapped * self.sin).to(x.dtype)


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
        q, k = time_table(q), time_table(k)
        if kept:
            pk, pv = cache.layers[self.index]
            k, v = torch.cat([pk, k], 2), torch.cat([pv, v], 2)
        if cache is not None and commit:
            cache.store(self.index, k[:, :, : kept + commit], v[:, :, : kept + commit])
        one_example = isolated is None or not isolated.any()
        if T == 1 and one_example:  # one new frame sees every kept frame and itself: nothing to mask
            y = self.time_attn.merge(attend(q, k, v, None, self.time_attn.softcap))
            return x + y.view(B, S, T, d).permute(0, 2, 1, 3)
        qi = torch.arange(past, past + T, device=x.device)[:, None]
        ki = torch.arange(past - kept, past + T, device=x.device)[None, :]
        mask = (ki <= qi)[None, None]  # causal over frames
        if not one_example:  # single-image examples see only their own frame
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
            q, k = space_tables(q), space_tables(k)
        x = x + self.space_attn.merge(attend(q, k, v, None, self.space_attn.softcap)).view(B, T, S, d)
        return x + self.mlp(self.mlp_norm(x))
