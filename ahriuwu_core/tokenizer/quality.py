"""Tokenizer quality checks: held-out reconstruction metrics (HUD-masked), GT-vs-recon strips, the collapse
guard and the per-layer attention-entropy diagnostic."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _as_float_frames(frames) -> torch.Tensor:
    """uint8 (N,H,W,3) numpy/tensor or float (N,3,H,W) in [0,1] -> float tensor (N,3,H,W)."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(frames)
    if frames.dtype == torch.uint8:
        if frames.shape[-1] != 3:
            raise ValueError(f"uint8 frames must be (N,H,W,3), got {tuple(frames.shape)}")
        return frames.permute(0, 3, 1, 2).float() / 255.0
    if frames.dim() != 4 or frames.shape[1] != 3:
        raise ValueError(f"float frames must be (N,3,H,W), got {tuple(frames.shape)}")
    return frames.float()


@torch.no_grad()
def reconstruct(tokenizer: nn.Module, frames, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode/decode frames independently (T=1) -> (latents (N,tokens,dim), recon (N,3,H,W) in [0,1])."""
    x = _as_float_frames(frames)
    device = next(tokenizer.parameters()).device
    lats, recs = [], []
    for i in range(0, x.shape[0], batch):
        xb = x[i : i + batch].to(device)[:, None]
        z = tokenizer.encode(xb)
        lats.append(z[:, 0].float().cpu())
        recs.append(tokenizer.decode(z)[:, 0].float().cpu())
    return torch.cat(lats), torch.cat(recs)


def _mean_pairwise_rms(x: torch.Tensor) -> float:
    """Mean over pairs i<j of RMS(x_i - x_j)."""
    flat = x.reshape(x.shape[0], -1).double()
    d2 = torch.cdist(flat, flat).pow(2) / flat.shape[1]
    n = flat.shape[0]
    iu = torch.triu_indices(n, n, offset=1)
    return float(d2[iu[0], iu[1]].sqrt().mean())


def collapse_check(
    tokenizer: nn.Module,
    frames,
    min_recon_ratio: float = 0.5,
    min_latent_ratio: float = 0.05,
) -> tuple[bool, dict]:
    """Fail when distinct frames map to near-identical latents or reconstructions.

    recon_ratio  = mean pairwise RMS difference of reconstructions / same for the input frames
    latent_ratio = mean pairwise RMS difference of latents / RMS of the latents around their mean
                   (both in latent units; a collapsed encoder gives ~0)
    Passes when recon_ratio >= min_recon_ratio and latent_ratio >= min_latent_ratio. A tokenizer that
    decodes every input to the mean image has recon_ratio ~ 0."""
    x = _as_float_frames(frames)
    if x.shape[0] < 2:
        raise ValueError(f"collapse_check needs at least 2 frames, got {x.shape[0]}")
    data_spread = _mean_pairwise_rms(x)
    if data_spread < 1e-4:
        raise ValueError("collapse_check frames are (near-)identical: pass distinct held-out frames")
    was_training = tokenizer.training
    tokenizer.eval()
    lat, rec = reconstruct(tokenizer, x)
    tokenizer.train(was_training)
    recon_spread = _mean_pairwise_rms(rec)
    latent_spread = _mean_pairwise_rms(lat)
    latent_scale = float((lat - lat.mean(0, keepdim=True)).pow(2).mean().sqrt()) * np.sqrt(2) + 1e-12
    latent_abs = float(lat.pow(2).mean().sqrt()) + 1e-12
    details = {
        "num_frames": int(x.shape[0]),
        "data_spread": data_spread,
        "recon_spread": recon_spread,
        "recon_ratio": recon_spread / data_spread,
        "latent_spread": latent_spread,
        # relative to the latents' overall magnitude: identical latents give 0 however large they are
        "latent_ratio": latent_spread / latent_abs,
        "latent_spread_vs_std": latent_spread / latent_scale,
        "min_recon_ratio": min_recon_ratio,
        "min_latent_ratio": min_latent_ratio,
    }
    passed = details["recon_ratio"] >= min_recon_ratio and details["latent_ratio"] >= min_latent_ratio
    details["passed"] = bool(passed)
    return bool(passed), details


@torch.no_grad()
def attention_entropy(tokenizer: nn.Module, frames) -> dict[str, float]:
    """Mean attention entropy (nats) per attention layer on `frames` (T=1 per frame); {} for the CNN.
    Uniform attention over n keys gives log(n); a collapsed layer attending to one key gives ~0."""
    mods = tokenizer.attention_modules() if hasattr(tokenizer, "attention_modules") else {}
    if not mods:
        return {}
    for m in mods.values():
        m.record_entropy, m.last_entropy = True, None
    try:
        was_training = tokenizer.training
        tokenizer.eval()
        x = _as_float_frames(frames).to(next(tokenizer.parameters()).device)
        tokenizer.decode(tokenizer.encode(x[:, None]))
        tokenizer.train(was_training)
        return {name: float(m.last_entropy) for name, m in mods.items()}
    finally:
        for m in mods.values():
            m.record_entropy = False


def recon_strip(gt, recon, max_frames: int = 8) -> np.ndarray:
    """uint8 image (2*H, n*W, 3): top row ground truth, bottom row reconstruction."""
    g = _as_float_frames(gt)[:max_frames]
    r = _as_float_frames(recon)[:max_frames]
    if g.shape != r.shape:
        raise ValueError(f"gt {tuple(g.shape)} and recon {tuple(r.shape)} differ")
    top = torch.cat(list(g), dim=-1)
    bottom = torch.cat(list(r), dim=-1)
    img = torch.cat([top, bottom], dim=-2).permute(1, 2, 0)
    return (img.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


def heldout_metrics(
    tokenizer: nn.Module,
    frames_uint8: np.ndarray,
    hud_mask: np.ndarray | None,
    lpips_net: str = "alex",
    lpips: bool = True,
) -> dict:
    """frames_uint8 (N,H,W,3) of one store, its hud_mask (H,W) (1 = HUD) or None -> per-frame PSNR/SSIM/LPIPS
    on game pixels (numpy arrays) and the reconstructions (N,3,H,W)."""
    from ..images import metrics as M

    _, rec = reconstruct(tokenizer, frames_uint8)
    rec_hwc = rec.permute(0, 2, 3, 1).numpy().astype(np.float64)
    gt = frames_uint8.astype(np.float64) / 255.0
    out = {
        "psnr": np.atleast_1d(M.psnr(rec_hwc, gt, hud_mask)),
        "ssim": np.atleast_1d(M.ssim(rec_hwc, gt, hud_mask)),
        "recon": rec,
    }
    if lpips:
        device = next(tokenizer.parameters()).device
        out["lpips"] = np.atleast_1d(M.lpips_distance(rec_hwc, gt, hud_mask, net=lpips_net, device=device))
    return out
