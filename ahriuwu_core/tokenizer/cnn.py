"""CNN tokenizer: optional space-to-depth stem, ResNet stages with stride-2 downsampling to a latent grid,
ResNet blocks at the grid resolution, a 1x1 conv + tanh bottleneck, and a mirrored decoder (nearest
upsampling + conv, depth-to-space at the end). Frames are encoded independently.

grid = image_size / (patch * 2**len(channels)); tokens = grid**2 (row-major), token_dim = latent_dim.
With patch=1 (the seed preset) this is the classic conv autoencoder; patch>1 moves the work off the full
resolution (cheap on CPU: the demo preset folds 4x4 pixels into channels and runs every conv at 16x16)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class CNNTokenizerConfig:
    image_size: int = 64
    channels: tuple = (32, 64, 128)  # one stage (and one 2x downsampling) per entry
    blocks_per_stage: int = 1
    latent_dim: int = 16
    groups: int = 8  # GroupNorm groups (clipped to divide the channel count)
    patch: int = 1  # space-to-depth factor of the stem (pixel_unshuffle)
    mid_channels: int = 0  # width at the grid resolution (0 = channels[-1])
    mid_blocks: int = 0  # ResBlocks at the grid resolution, in encoder and decoder each
    linear_skip: bool = False  # add a linear path pixels <-> latents (space-to-depth + 1x1 conv)

    def __post_init__(self):
        self.channels = tuple(self.channels)
        if not self.channels and not self.mid_channels:
            raise ValueError("CNN tokenizer needs channels or mid_channels")
        if self.image_size % (self.patch * 2 ** len(self.channels)):
            raise ValueError(
                f"image_size {self.image_size} not divisible by patch*2**len(channels) = "
                f"{self.patch * 2 ** len(self.channels)}"
            )

    @property
    def grid(self) -> int:
        return self.image_size // (self.patch * 2 ** len(self.channels))

    @property
    def mid(self) -> int:
        return self.mid_channels or self.channels[-1]


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
        ch, g, p, mid = cfg.channels, cfg.groups, cfg.patch, cfg.mid
        enc = [nn.PixelUnshuffle(p)] if p > 1 else []
        enc.append(nn.Conv2d(3 * p * p, ch[0] if ch else mid, 3, padding=1))
        for i, c in enumerate(ch):
            enc += [ResBlock(c, g) for _ in range(cfg.blocks_per_stage)]
            nxt = ch[i + 1] if i + 1 < len(ch) else mid
            enc.append(nn.Conv2d(c, nxt, 4, stride=2, padding=1))
        enc += [ResBlock(mid, g) for _ in range(cfg.mid_blocks)]
        enc += [_norm(mid, g), nn.SiLU(), nn.Conv2d(mid, cfg.latent_dim, 1)]
        self.encoder = nn.Sequential(*enc)
        dec = [nn.Conv2d(cfg.latent_dim, mid, 3, padding=1)]
        dec += [ResBlock(mid, g) for _ in range(cfg.mid_blocks)]
        for i in reversed(range(len(ch))):
            c = ch[i]
            prev = ch[i + 1] if i + 1 < len(ch) else mid
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(prev, c, 3, padding=1)]
            dec += [ResBlock(c, g) for _ in range(cfg.blocks_per_stage)]
        out_ch = ch[0] if ch else mid
        dec += [_norm(out_ch, g), nn.SiLU(), nn.Conv2d(out_ch, 3 * p * p, 3, padding=1)]
        self.out_conv = dec[-1]
        if p > 1:
            dec.append(nn.PixelShuffle(p))
        self.decoder = nn.Sequential(*dec)
        if cfg.linear_skip:
            # A linear patch projection beside the conv stack: it learns a PCA-like code within a few
            # hundred steps, and the ResNet path only has to learn the residual.
            f = cfg.image_size // cfg.grid
            self.skip_in = nn.Sequential(nn.PixelUnshuffle(f), nn.Conv2d(3 * f * f, cfg.latent_dim, 1))
            self.skip_out = nn.Sequential(nn.Conv2d(cfg.latent_dim, 3 * f * f, 1), nn.PixelShuffle(f))
            nn.init.zeros_(self.skip_out[0].bias)
            # The conv paths start silent, so the model starts as exactly the linear code.
            nn.init.zeros_(self.encoder[-1].weight)
            nn.init.zeros_(self.encoder[-1].bias)
            nn.init.zeros_(self.out_conv.weight)
        nn.init.constant_(self.out_conv.bias, 0.5)  # start at mid-gray

    @torch.no_grad()
    def init_linear_from_data(self, frames: torch.Tensor, latent_scale: float = 0.15) -> float:
        """Data-dependent init of the linear path (needs linear_skip): PCA of the grid cells' pixel blocks.

        frames (N,3,H,W) in [0,1]. Encoder: z_k = tanh(s_k * c_k) with c_k the k-th principal component
        coefficient and s_k = latent_scale / std(c_k) (keeps z in tanh's near-linear range); decoder: the
        inverse linear map. Returns the fraction of pixel variance the kept components explain."""
        if not self.cfg.linear_skip:
            raise ValueError("init_linear_from_data needs linear_skip=True")
        conv_in, conv_out = self.skip_in[1], self.skip_out[0]
        x = self.skip_in[0](frames.float() * 2 - 1)  # (N, 3f^2, g, g)
        X = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]).double()
        mu = X.mean(0)
        U, S, Vt = torch.linalg.svd(X - mu, full_matrices=False)
        k = self.cfg.latent_dim
        V = Vt[:k]  # (k, 3f^2)
        std = (S[:k] / max(1, X.shape[0] - 1) ** 0.5).clamp_min(1e-6)
        scale = latent_scale / std
        conv_in.weight.copy_((scale[:, None] * V).float()[:, :, None, None])
        conv_in.bias.copy_((-scale * (V @ mu)).float())
        # x01 = 0.5 * (mu + V^T c) + 0.5, c = z / s; the decoder's conv path contributes its 0.5 bias.
        conv_out.weight.copy_((0.5 * V.T / scale[None, :]).float()[:, :, None, None])
        conv_out.bias.copy_((0.5 * mu).float())
        return float((S[:k] ** 2).sum() / (S**2).sum())

    @property
    def num_tokens(self) -> int:
        return self.cfg.grid**2

    @property
    def token_dim(self) -> int:
        return self.cfg.latent_dim

    def encode(self, frames):
        """frames (B,T,3,H,W) in [0,1] -> latents (B,T,grid*grid,latent_dim) in [-1,1]."""
        B, T, C, H, W = frames.shape
        s = self.cfg.image_size
        if (C, H, W) != (3, s, s):
            raise ValueError(f"frames must be (B,T,3,{s},{s}), got {tuple(frames.shape)}")
        x = frames.reshape(B * T, C, H, W) * 2 - 1
        h = self.encoder(x)
        if self.cfg.linear_skip:
            h = h + self.skip_in(x)
        z = torch.tanh(h)
        return z.flatten(2).transpose(1, 2).reshape(B, T, self.num_tokens, self.token_dim)

    def decode_raw(self, latents):
        B, T, N, D = latents.shape
        g = self.cfg.grid
        z = latents.reshape(B * T, N, D).transpose(1, 2).reshape(B * T, D, g, g)
        x = self.decoder(z)
        if self.cfg.linear_skip:
            x = x + self.skip_out(z)
        return x.reshape(B, T, 3, x.shape[-2], x.shape[-1])

    def decode(self, latents):
        return self.decode_raw(latents).clamp(0, 1)

    def forward(self, frames, mask_ratio_max: float = 0.0):
        """Training pass -> (unclamped reconstruction, latents). No MAE masking for the CNN."""
        lat = self.encode(frames)
        return self.decode_raw(lat), lat

    def attention_modules(self) -> dict[str, nn.Module]:
        return {}
