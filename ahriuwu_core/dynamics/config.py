"""The world model's configuration: sizes, token layout, attention pattern and the persistence prior's options."""

from __future__ import annotations

import math
from dataclasses import dataclass


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
