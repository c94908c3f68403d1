"""Tokenizer reconstruction loss: MSE on game pixels + lpips_weight * LPIPS, each term divided by a running
RMS of itself (the paper's loss normalization, training.RunningRMS).

HUD pixels (hud_mask == 1) are excluded: the MSE is a weighted mean over game pixels, and LPIPS sees the
reconstruction with its HUD pixels replaced by the ground truth (no error there) and its spatial map is
averaged over game pixels. LPIPS is costly on CPU, so it runs on a random subset of `lpips_frames` frames
of each batch (0 = all frames)."""

from __future__ import annotations

import torch
from torch import nn

from ..training.loss_norm import RunningRMS


def masked_mse(recon: torch.Tensor, target: torch.Tensor, game: torch.Tensor | None = None) -> torch.Tensor:
    """recon/target (..., 3, H, W); game weights broadcastable to (..., 1, H, W), 1 = game pixel."""
    sq = (recon.float() - target.float()).pow(2)
    if game is None:
        return sq.mean()
    game = game.float().expand_as(sq[..., :1, :, :])
    return (sq * game).sum() / (game.sum() * sq.shape[-3]).clamp_min(1.0)


def build_lpips(net: str = "alex", pretrained_backbone: bool = True, device="cpu") -> nn.Module:
    """LPIPS with a spatial map output and frozen weights. `pretrained_backbone=False` gives a randomly
    initialised backbone (tests only; never downloads). The real backbone comes from torch's hub cache,
    provisioned offline by `python -m ahriuwu_core.images.lpips_weights`."""
    if pretrained_backbone:
        from ..images.metrics import get_lpips_model

        return get_lpips_model(net, device)
    import lpips

    model = lpips.LPIPS(net=net, spatial=True, pnet_rand=True, verbose=False).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class ReconstructionLoss:
    def __init__(
        self,
        lpips_weight: float = 0.2,
        lpips_model: nn.Module | None = None,
        lpips_frames: int = 0,
        rms: RunningRMS | None = None,
    ):
        if lpips_weight > 0 and lpips_model is None:
            raise ValueError("lpips_weight > 0 needs an lpips_model")
        self.lpips_weight = lpips_weight
        self.lpips_model = lpips_model
        self.lpips_frames = lpips_frames
        self.rms = rms or RunningRMS()

    def lpips_term(self, recon, target, game):
        C, H, W = recon.shape[-3:]
        r = recon.reshape(-1, C, H, W)
        t = target.reshape(-1, C, H, W)
        g = game.expand(*recon.shape[:-3], 1, H, W).reshape(-1, 1, H, W).float() if game is not None else None
        if self.lpips_frames and r.shape[0] > self.lpips_frames:
            idx = torch.randperm(r.shape[0], device=r.device)[: self.lpips_frames]
            r, t = r[idx], t[idx]
            g = g[idx] if g is not None else None
        r = r.float().clamp(0, 1)
        t = t.float()
        if g is not None:
            r = r * g + t * (1 - g)
        dmap = self.lpips_model(r * 2 - 1, t * 2 - 1)  # lpips expects [-1, 1]
        if dmap.dim() == 4 and g is not None:
            if dmap.shape[-2:] != (H, W):
                dmap = nn.functional.interpolate(dmap, size=(H, W), mode="bilinear", align_corners=False)
            return (dmap * g).sum() / g.sum().clamp_min(1.0)
        return dmap.mean()

    def __call__(self, recon, target, game=None):
        """-> (normalized total loss, stats dict of raw floats)."""
        mse = masked_mse(recon, target, game)
        loss = self.rms("mse", mse)
        stats = {"mse": float(mse.detach())}
        if self.lpips_weight > 0:
            lp = self.lpips_term(recon, target, game)
            loss = loss + self.lpips_weight * self.rms("lpips", lp)
            stats["lpips"] = float(lp.detach())
        stats["loss"] = float(loss.detach())
        return loss, stats
