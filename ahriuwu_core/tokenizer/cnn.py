"""CNN tokenizer: ResNet stages with stride-2 downsampling to a latent grid, a 1x1 conv + tanh bottleneck,
and a mirrored decoder (nearest upsampling + conv). Frames are encoded independently.

grid = image_size / 2**len(channels); tokens = grid**2 (row-major), token_dim = latent_dim."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class CNNTokenizerConfig:
    image_size: int = 64
    channels: tuple = (32, 64, 128)   # one stage (and one 2x downsampling) per entry
    blocks_per_stage: int = 1
    latent_dim: int = 16
    groups: int = 8                   # GroupNorm groups (clipped to divide the channel count)

    def __post_init__(self):
        self.channels = tuple(self.channels)
        if self.image_size % (2 ** len(self.channels)):
            raise ValueError(f"image_size {self.image_size} not divisible by 2**{len(self.channels)}")

    @property
    def grid(self) -> int:
        return self.image_size // 2 ** len(self.channels)


def _norm(ch: int, groups: int) -> nn.GroupNorm:
    g = min(groups, ch)
    while ch % g:
        g -= 1
    return nn.GroupNorm(g, ch)


class ResBlock(nn.Module):
    def __init__(self, ch: int, groups: int):
        super().__init__()
        self.norm1 = _norm(ch, groups)
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.norm2 = _norm(ch, groups)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # block starts as identity
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        return x + self.conv2(F.silu(self.norm2(h)))


class CNNTokenizer(nn.Module):
    kind = "cnn"

    def __init__(self, cfg: CNNTokenizerConfig):
        super().__init__()
        self.cfg = cfg
        ch, g = cfg.channels, cfg.groups
        enc = [nn.Conv2d(3, ch[0], 3, padding=1)]
        for i, c in enumerate(ch):
            enc += [ResBlock(c, g) for _ in range(cfg.blocks_per_stage)]
            nxt = ch[i + 1] if i + 1 < len(ch) else c
            enc.append(nn.Conv2d(c, nxt, 4, stride=2, padding=1))
        enc += [_norm(ch[-1], g), nn.SiLU(), nn.Conv2d(ch[-1], cfg.latent_dim, 1)]
        self.encoder = nn.Sequential(*enc)
        dec = [nn.Conv2d(cfg.latent_dim, ch[-1], 3, padding=1)]
        for i in reversed(range(len(ch))):
            c = ch[i]
            prev = ch[i + 1] if i + 1 < len(ch) else c
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(prev, c, 3, padding=1)]
            dec += [ResBlock(c, g) for _ in range(cfg.blocks_per_stage)]
        dec += [_norm(ch[0], g), nn.SiLU(), nn.Conv2d(ch[0], 3, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        nn.init.constant_(self.decoder[-1].bias, 0.5)  # start at mid-gray

    @property
    def num_tokens(self) -> int:
        return self.cfg.grid ** 2

    @property
    def token_dim(self) -> int:
        return self.cfg.latent_dim

    def encode(self, frames):
        """frames (B,T,3,H,W) in [0,1] -> latents (B,T,grid*grid,latent_dim) in [-1,1]."""
        B, T, C, H, W = frames.shape
        s = self.cfg.image_size
        if (C, H, W) != (3, s, s):
            raise ValueError(f"frames must be (B,T,3,{s},{s}), got {tuple(frames.shape)}")
        z = torch.tanh(self.encoder(frames.reshape(B * T, C, H, W) * 2 - 1))
        return z.flatten(2).transpose(1, 2).reshape(B, T, self.num_tokens, self.token_dim)

    def decode_raw(self, latents):
        B, T, N, D = latents.shape
        g = self.cfg.grid
        z = latents.reshape(B * T, N, D).transpose(1, 2).reshape(B * T, D, g, g)
        x = self.decoder(z)
        return x.reshape(B, T, 3, x.shape[-2], x.shape[-1])

    def decode(self, latents):
        return self.decode_raw(latents).clamp(0, 1)

    def forward(self, frames, mask_ratio_max: float = 0.0):
        """Training pass -> (unclamped reconstruction, latents). No MAE masking for the CNN."""
        lat = self.encode(frames)
        return self.decode_raw(lat), lat

    def attention_modules(self) -> dict[str, nn.Module]:
        return {}
