"""Transformer tokenizer (the paper's): patch tokens + learned latent tokens per frame, block-causal in time,
a per-token linear+tanh bottleneck, and a decoder that reads pixels out through fresh learned patch queries.

Attention masks (True = may attend), per frame t:
  encoder  patch(t)  -> every token of frame t
           latent(t) -> patches of frame t, latents of frames <= t
  decoder  latent(t) -> latents of frames <= t
           query(t)  -> queries of frame t, latents of frames <= t
so nothing at frame t ever depends on a later frame.

Training uses MAE masking: each frame drops its patches with probability p ~ U(0, mask_ratio_max), replacing
them by a learned mask token. Parameters grow linearly with the token counts: the only per-token parameters
are position embeddings / learned tokens, and the bottleneck is one shared Linear applied to each token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import Block, RMSNorm, rope_angles


@dataclass
class TransformerTokenizerConfig:
    image_size: int = 64
    patch_size: int = 8
    num_latents: int = 32  # learned latent tokens per frame
    latent_dim: int = 16  # bottleneck width per latent token
    d_model: int = 192
    n_layers: int = 4  # encoder blocks
    dec_layers: int = 0  # decoder blocks (0 = same as n_layers)
    n_heads: int = 4
    mlp_ratio: float = 4.0
    softcap: float = 50.0  # attention logit soft-cap (0 disables; then the fused SDPA kernel is used)
    qk_gain: float = 2.0  # initial QK-norm gain (logits x gain^2): breaks the uniform-attention start
    out_tokens: int = 0  # encode output reshape: (num_latents, latent_dim) -> (out_tokens, ...); 0 = none
    cell_skip: bool = False  # latents start from their grid cell's patches, patch queries from their cell's latents

    def __post_init__(self):
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} not divisible by patch_size {self.patch_size}")
        if self.out_tokens and (self.num_latents * self.latent_dim) % self.out_tokens:
            raise ValueError(
                f"out_tokens {self.out_tokens} must divide num_latents*latent_dim {self.num_latents * self.latent_dim}"
            )
        if self.out_tokens and self.num_latents % self.out_tokens:
            raise ValueError(f"out_tokens {self.out_tokens} must divide num_latents {self.num_latents}")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid**2


def _frame_layout(T: int, n_first: int, n_second: int):
    """Frame index and 'is second kind' flag of every token, frames laid out [first..., second...]."""
    per = n_first + n_second
    frame = torch.arange(T).repeat_interleave(per)
    second = (torch.arange(per) >= n_first).repeat(T)
    return frame, second


def encoder_mask(T: int, P: int, L: int) -> torch.Tensor:
    frame, is_lat = _frame_layout(T, P, L)
    same = frame[:, None] == frame[None, :]
    past = frame[None, :] <= frame[:, None]
    patch_row = ~is_lat[:, None] & same
    latent_row = is_lat[:, None] & ((~is_lat[None, :] & same) | (is_lat[None, :] & past))
    return patch_row | latent_row


def decoder_mask(T: int, L: int, P: int) -> torch.Tensor:
    frame, is_query = _frame_layout(T, L, P)
    same = frame[:, None] == frame[None, :]
    past = frame[None, :] <= frame[:, None]
    latent_row = ~is_query[:, None] & ~is_query[None, :] & past
    query_row = is_query[:, None] & ((is_query[None, :] & same) | (~is_query[None, :] & past))
    return latent_row | query_row


def latent_cells(L: int, g: int) -> torch.Tensor:
    """(L, g*g) row-stochastic map from patches to latents: each latent averages the patches of its grid cell
    (see latent_grid_positions; the whole frame when the latents are not on a grid)."""
    P = g * g
    if L % P == 0:
        return torch.eye(P).repeat(L // P, 1)
    s = round(L**0.5)
    if s * s == L and g % s == 0:
        cell = torch.arange(g) // (g // s)
        patch_cell = (cell[:, None] * s + cell[None, :]).reshape(P)
        m = (patch_cell[None, :] == torch.arange(L)[:, None]).float()
        return m / m.sum(1, keepdim=True)
    return torch.full((L, P), 1.0 / P)


def latent_grid_positions(L: int, g: int) -> torch.Tensor:
    """(row, col) of each latent token in RoPE space, spread over the g x g patch grid so that a latent starts out
    near the patches it should summarise (and a decoder patch query near its latents): with L a multiple of g*g,
    latent i sits on patch i mod g*g; with L a square s*s, on the centres of an s x s grid; otherwise at the
    grid centre (learned embeddings alone tell them apart). Stacked on the centre, every latent starts equally
    far from every patch and the small tokenizer learns far slower (bench/RESULTS.md, tokenizer)."""
    P = g * g
    if L % P == 0:
        i = torch.arange(L) % P
        return torch.stack([i // g, i % g], -1).float()
    s = round(L**0.5)
    if s * s == L:
        c = (torch.arange(s).float() + 0.5) * g / s - 0.5
        return torch.stack([c.repeat_interleave(s), c.repeat(s)], -1)
    return torch.full((L, 2), (g - 1) / 2)


class TransformerTokenizer(nn.Module):
    kind = "transformer"

    def __init__(self, cfg: TransformerTokenizerConfig):
        super().__init__()
        self.cfg = cfg
        d, P, L, p = cfg.d_model, cfg.num_patches, cfg.num_latents, cfg.patch_size
        self.patch_embed = nn.Linear(p * p * 3, d)
        self.patch_pos = nn.Parameter(torch.randn(P, d) * 0.02)
        self.mask_token = nn.Parameter(torch.randn(d) * 0.02)
        self.latent_tokens = nn.Parameter(torch.randn(L, d) * 0.02)
        self.encoder = nn.ModuleList(
            Block(d, cfg.n_heads, cfg.mlp_ratio, cfg.softcap, cfg.qk_gain) for _ in range(cfg.n_layers)
        )
        self.enc_norm = RMSNorm(d)
        self.bottleneck = nn.Linear(d, cfg.latent_dim)  # per token: parameters independent of token count
        self.unbottleneck = nn.Linear(cfg.latent_dim, d)
        self.dec_latent_pos = nn.Parameter(torch.randn(L, d) * 0.02)
        self.patch_queries = nn.Parameter(torch.randn(P, d) * 0.02)
        n_dec = cfg.dec_layers or cfg.n_layers
        self.decoder = nn.ModuleList(
            Block(d, cfg.n_heads, cfg.mlp_ratio, cfg.softcap, cfg.qk_gain) for _ in range(n_dec)
        )
        self.dec_norm = RMSNorm(d)
        self.to_pixels = nn.Linear(d, p * p * 3)
        if cfg.cell_skip:
            # A direct per-cell path (patch -> its latent -> its patch query) beside the attention: the latents
            # start as a local code instead of a uniform average, the plateau at the mean image is skipped.
            cells = latent_cells(L, cfg.grid)  # (L, P): each latent averages its cell's patches
            member = (cells > 0).float().T  # (P, L): each patch averages the latents of its cell
            self.register_buffer("cell_pool", cells, persistent=False)
            self.register_buffer("cell_unpool", member / member.sum(1, keepdim=True), persistent=False)
        self._init_weights(cfg.n_layers + n_dec)
        self._mask_cache: dict = {}

    def _init_weights(self, depth: int):
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for blk in [*self.encoder, *self.decoder]:  # residual branches start small (GPT-2 style)
            nn.init.trunc_normal_(blk.attn.proj.weight, std=0.02 / (2 * depth) ** 0.5)
            nn.init.trunc_normal_(blk.mlp.w_down.weight, std=0.02 / (2 * depth) ** 0.5)
        nn.init.constant_(self.to_pixels.bias, 0.5)  # start at mid-gray

    # ---- interface
    @property
    def num_tokens(self) -> int:
        return self.cfg.out_tokens or self.cfg.num_latents

    @property
    def token_dim(self) -> int:
        return self.cfg.num_latents * self.cfg.latent_dim // self.num_tokens

    def _masks_and_rope(self, T: int, device):
        key = (T, str(device))
        if key not in self._mask_cache:
            c = self.cfg
            P, L, g = c.num_patches, c.num_latents, c.grid
            rows = torch.arange(P) // g
            cols = torch.arange(P) % g
            lat_rc = latent_grid_positions(L, g)
            enc_pos, dec_pos = [], []
            for t in range(T):
                patch_pos = torch.stack([torch.full((P,), float(t)), rows.float(), cols.float()], -1)
                lat_pos = torch.cat([torch.full((L, 1), float(t)), lat_rc], -1)
                enc_pos += [patch_pos, lat_pos]
                dec_pos += [lat_pos, patch_pos]
            hd = c.d_model // c.n_heads
            out = {}
            for name, pos, mask in (
                ("enc", torch.cat(enc_pos), encoder_mask(T, P, L)),
                ("dec", torch.cat(dec_pos), decoder_mask(T, L, P)),
            ):
                ang = rope_angles(pos, hd)
                out[name] = (mask.to(device), ang.cos().to(device), ang.sin().to(device))
            self._mask_cache[key] = out
        return self._mask_cache[key]

    def patchify(self, frames):
        B, T, C, H, W = frames.shape
        p, g = self.cfg.patch_size, self.cfg.grid
        x = frames.reshape(B, T, C, g, p, g, p).permute(0, 1, 3, 5, 4, 6, 2)
        return x.reshape(B, T, g * g, p * p * C)

    def unpatchify(self, x):
        B, T = x.shape[:2]
        p, g = self.cfg.patch_size, self.cfg.grid
        x = x.reshape(B, T, g, g, p, p, 3).permute(0, 1, 6, 2, 4, 3, 5)
        return x.reshape(B, T, 3, g * p, g * p)

    def encode_raw(self, frames, mask_ratio_max: float = 0.0):
        """frames (B,T,3,H,W) in [0,1] -> latents (B,T,num_latents,latent_dim) in [-1,1]."""
        c = self.cfg
        B, T, C, H, W = frames.shape
        if (C, H, W) != (3, c.image_size, c.image_size):
            raise ValueError(f"frames must be (B,T,3,{c.image_size},{c.image_size}), got {tuple(frames.shape)}")
        P, L = c.num_patches, c.num_latents
        x = self.patch_embed(self.patchify(frames) * 2 - 1)
        if mask_ratio_max > 0:
            rate = torch.rand(B, T, 1, device=x.device) * mask_ratio_max
            drop = torch.rand(B, T, P, device=x.device) < rate
            x = torch.where(drop[..., None], self.mask_token.to(x.dtype), x)
        lat = self.latent_tokens.expand(B, T, L, c.d_model).to(x.dtype)
        if c.cell_skip:
            lat = lat + self.cell_pool.to(x.dtype) @ x
        x = x + self.patch_pos
        h = torch.cat([x, lat], dim=2).reshape(B, T * (P + L), c.d_model)
        mask, cos, sin = self._masks_and_rope(T, frames.device)["enc"]
        for blk in self.encoder:
            h = blk(h, mask, cos, sin)
        h = self.enc_norm(h).reshape(B, T, P + L, c.d_model)[:, :, P:]
        return torch.tanh(self.bottleneck(h))

    def decode_raw(self, latents):
        """latents (B,T,num_latents,latent_dim) -> unclamped frames (B,T,3,H,W) (~[0,1])."""
        c = self.cfg
        B, T = latents.shape[:2]
        P, L = c.num_patches, c.num_latents
        z = self.unbottleneck(latents) + self.dec_latent_pos
        q = self.patch_queries.expand(B, T, P, c.d_model).to(z.dtype)
        if c.cell_skip:
            q = q + self.cell_unpool.to(z.dtype) @ z
        h = torch.cat([z, q], dim=2).reshape(B, T * (L + P), c.d_model)
        mask, cos, sin = self._masks_and_rope(T, latents.device)["dec"]
        for blk in self.decoder:
            h = blk(h, mask, cos, sin)
        h = self.dec_norm(h).reshape(B, T, L + P, c.d_model)[:, :, L:]
        return self.unpatchify(self.to_pixels(h))

    def to_output(self, latents):
        B, T = latents.shape[:2]
        return latents.reshape(B, T, self.num_tokens, self.token_dim)

    def from_output(self, latents):
        B, T = latents.shape[:2]
        return latents.reshape(B, T, self.cfg.num_latents, self.cfg.latent_dim)

    def encode(self, frames):
        return self.to_output(self.encode_raw(frames))

    def decode(self, latents):
        return self.decode_raw(self.from_output(latents)).clamp(0, 1)

    def forward(self, frames, mask_ratio_max: float = 0.0):
        """Training pass -> (unclamped reconstruction, latents in encode's output shape)."""
        lat = self.encode_raw(frames, mask_ratio_max)
        return self.decode_raw(lat), self.to_output(lat)

    def attention_modules(self) -> dict[str, nn.Module]:
        mods = {f"encoder.{i}": b.attn for i, b in enumerate(self.encoder)}
        mods.update({f"decoder.{i}": b.attn for i, b in enumerate(self.decoder)})
        return mods
