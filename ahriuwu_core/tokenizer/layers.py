"""Transformer building blocks for the tokenizer: RMSNorm, SwiGLU, axial RoPE, attention with QK-norm
and logit soft-capping under an arbitrary boolean mask."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.norm import RMSNorm  # noqa: F401  (re-exported for the tokenizer modules)


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w_gate_up = nn.Linear(dim, 2 * hidden, bias=False)
        self.w_down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        gate, up = self.w_gate_up(x).chunk(2, dim=-1)
        return self.w_down(F.silu(gate) * up)


def axial_rope_split(head_dim: int) -> tuple[int, int, int]:
    """Head channels rotated by (time, row, col); each part even. Left-over channels stay unrotated."""
    d_time = (head_dim // 4) // 2 * 2
    d_space = ((head_dim - d_time) // 2) // 2 * 2
    return d_time, d_space, d_space


def rope_angles(positions: torch.Tensor, head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """positions (S, 3) float (time, row, col) -> angles (S, head_dim // 2) for the rotated pairs
    (zero angle = identity on the unrotated tail)."""
    parts = axial_rope_split(head_dim)
    angles = []
    for axis, d in enumerate(parts):
        if d == 0:
            continue
        freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
        angles.append(positions[:, axis : axis + 1].float() * freqs[None, :])
    used = sum(parts) // 2
    angles.append(torch.zeros(positions.shape[0], head_dim // 2 - used))
    return torch.cat(angles, dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, S, hd); cos/sin (S, hd/2). Rotates channel pairs (2i, 2i+1)."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2).to(x.dtype)


class Attention(nn.Module):
    """Multi-head self-attention, QK-RMSNorm, optional tanh logit soft-cap, boolean mask (True = may attend).

    With soft-capping the logits are formed explicitly (the cap is a non-linearity on the logits, which the
    fused kernel cannot apply); without it, F.scaled_dot_product_attention is used (fused on CUDA).
    Set `record_entropy = True` to store the mean attention entropy (nats) of the last call."""

    def __init__(self, dim: int, n_heads: int, softcap: float = 0.0, qk_gain: float = 1.0):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"d_model {dim} not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.softcap = softcap
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.q_norm = RMSNorm(self.head_dim)
        self.k_norm = RMSNorm(self.head_dim)
        # QK-norm fixes |q|,|k| so the logits' scale is set by these gains alone; at gain 1 the attention
        # starts (and stays for long) near uniform, which decodes every patch to the mean image.
        nn.init.constant_(self.q_norm.weight, qk_gain)
        nn.init.constant_(self.k_norm.weight, qk_gain)
        self.record_entropy = False
        self.last_entropy: float | None = None

    def forward(self, x, mask, cos, sin):
        B, S, D = x.shape
        q, k, v = self.qkv(x).view(B, S, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if self.softcap > 0 or self.record_entropy:
            logits = (q @ k.transpose(-2, -1)).float() / math.sqrt(self.head_dim)
            if self.softcap > 0:
                logits = self.softcap * torch.tanh(logits / self.softcap)
            logits = logits.masked_fill(~mask, float("-inf"))
            probs = logits.softmax(dim=-1)
            if self.record_entropy:
                ent = -(probs * torch.log(probs.clamp_min(1e-12))).sum(-1)
                self.last_entropy = float(ent.mean())
            out = probs.to(v.dtype) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(B, S, D))


class Block(nn.Module):
    def __init__(self, dim: int, n_heads: int, mlp_ratio: float = 4.0, softcap: float = 0.0, qk_gain: float = 1.0):
        super().__init__()
        self.norm1 = RMSNorm(dim)
        self.attn = Attention(dim, n_heads, softcap, qk_gain)
        self.norm2 = RMSNorm(dim)
        # SwiGLU hidden width 2/3 * ratio * dim keeps the parameter count of a 4x GELU MLP.
        hidden = int(round(mlp_ratio * dim * 2 / 3 / 8)) * 8
        self.mlp = SwiGLU(dim, max(8, hidden))

    def forward(self, x, mask, cos, sin):
        x = x + self.attn(self.norm1(x), mask, cos, sin)
        return x + self.mlp(self.norm2(x))
