"""Image and latent metrics with the HUD mask honoured.

Images may be numpy arrays or torch tensors, uint8 (0..255) or float (0..1), laid out either
channels-last (..., H, W, 3) as in the frames stores or channels-first (..., 3, H, W) as the tokenizer
returns them. The HUD mask is (H, W) with 1 = HUD pixel (excluded) and 0 = game pixel; the metrics are
computed on game pixels only.

Every image metric returns one value per image: a float for a single image (H, W, 3), a numpy array of
the leading shape for a batch (e.g. (B, T)).

- PSNR: 10 log10(1 / MSE) over game pixels and the three channels; MSE is floored at 1e-10, so identical
  images give 100 dB instead of inf (an inf would poison every average it enters).
- SSIM: scikit-image's SSIM map (7x7 uniform window, data range 1), averaged over game pixels that are not
  within the window's half-width of the border. Without a mask it equals skimage's mean SSIM exactly.
- LPIPS: the lpips package's spatial map (upsampled to the input size), averaged over game pixels.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch

PSNR_MSE_FLOOR = 1e-10
SSIM_WIN_SIZE = 7


def to_float_hwc(images) -> np.ndarray:
    """Any supported image layout/dtype -> float64 numpy (..., H, W, 3) in [0, 1]."""
    if isinstance(images, torch.Tensor):
        images = images.detach().to("cpu")
        images = images.float().numpy() if images.dtype != torch.uint8 else images.numpy()
    arr = np.asarray(images)
    if arr.ndim < 3:
        raise ValueError(f"images must have at least 3 dims (H, W, 3) or (3, H, W), got shape {arr.shape}")
    if arr.shape[-1] != 3:
        if arr.shape[-3] != 3:
            raise ValueError(f"images need 3 channels first or last, got shape {arr.shape}")
        arr = np.moveaxis(arr, -3, -1)
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    return arr.astype(np.float64)


def game_weights(mask, height: int, width: int) -> np.ndarray:
    """HUD mask (1 = HUD) -> float weights (H, W) with 1 on game pixels. None means every pixel counts."""
    if mask is None:
        return np.ones((height, width), dtype=np.float64)
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.shape != (height, width):
        raise ValueError(f"hud mask shape {mask.shape} does not match image size {(height, width)}")
    weights = (mask == 0).astype(np.float64)
    if weights.sum() == 0:
        raise ValueError("hud mask excludes every pixel: nothing left to measure")
    return weights


def _unbatch(values: np.ndarray):
    return float(values) if values.ndim == 0 else values


def _check_pair(pred, target) -> tuple[np.ndarray, np.ndarray]:
    p, t = to_float_hwc(pred), to_float_hwc(target)
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {p.shape} != target shape {t.shape}")
    return p, t


def mse_per_image(pred, target, mask=None) -> np.ndarray | float:
    p, t = _check_pair(pred, target)
    w = game_weights(mask, p.shape[-3], p.shape[-2])
    sq = ((p - t) ** 2).sum(axis=-1)  # sum over channels
    values = (sq * w).sum(axis=(-2, -1)) / (w.sum() * 3.0)
    return _unbatch(np.asarray(values))


def psnr_from_mse(mse, data_range: float = 1.0):
    mse = np.maximum(np.asarray(mse, dtype=np.float64), PSNR_MSE_FLOOR)
    return _unbatch(10.0 * np.log10(data_range**2 / mse))


def psnr(pred, target, mask=None) -> np.ndarray | float:
    """PSNR in dB on game pixels, per image."""
    return psnr_from_mse(mse_per_image(pred, target, mask))


def ssim(pred, target, mask=None) -> np.ndarray | float:
    """SSIM on game pixels, per image (see module docstring)."""
    from skimage.metrics import structural_similarity

    p, t = _check_pair(pred, target)
    h, w = p.shape[-3], p.shape[-2]
    if min(h, w) < SSIM_WIN_SIZE:
        raise ValueError(f"SSIM needs images of at least {SSIM_WIN_SIZE}x{SSIM_WIN_SIZE}, got {h}x{w}")
    weights = game_weights(mask, h, w)
    pad = (SSIM_WIN_SIZE - 1) // 2
    border = np.zeros_like(weights)
    border[pad : h - pad, pad : w - pad] = 1.0
    weights = weights * border
    if weights.sum() == 0:
        raise ValueError("no game pixels left away from the border for SSIM")
    lead = p.shape[:-3]
    p2, t2 = p.reshape(-1, h, w, 3), t.reshape(-1, h, w, 3)
    out = np.empty(p2.shape[0], dtype=np.float64)
    for i in range(p2.shape[0]):
        _, smap = structural_similarity(
            p2[i], t2[i], win_size=SSIM_WIN_SIZE, data_range=1.0, channel_axis=-1, full=True
        )
        out[i] = (smap.mean(axis=-1) * weights).sum() / weights.sum()
    return _unbatch(out.reshape(lead))


_LPIPS_CACHE: dict[tuple[str, str], torch.nn.Module] = {}
_LPIPS_LOCK = threading.Lock()


def get_lpips_model(net: str = "alex", device: str | torch.device = "cpu") -> torch.nn.Module:
    """A cached lpips.LPIPS(spatial=True) with the offline-provisioned backbone.

    The backbone weights are provisioned once by `python -m ahriuwu_core.images.lpips_weights`; this function never
    downloads (a missing backbone raises a RuntimeError naming that command).
    """
    key = (net, str(device))
    with _LPIPS_LOCK:
        if key not in _LPIPS_CACHE:
            _LPIPS_CACHE[key] = _build_lpips(net).to(device).eval()
        return _LPIPS_CACHE[key]


def _build_lpips(net: str) -> torch.nn.Module:
    import lpips

    from ahriuwu_core.images import lpips_weights

    backbone = {"alex": "alexnet", "vgg": "vgg16", "vgg16": "vgg16"}.get(net)
    if backbone is None:
        raise ValueError(f"unsupported LPIPS net {net!r}; use 'alex' or 'vgg'")
    weights_file = lpips_weights.hub_checkpoint_path(backbone)
    if not weights_file.exists():
        raise RuntimeError(
            f"LPIPS backbone {backbone!r} is not provisioned at {weights_file}; "
            "run `python -m ahriuwu_core.images.lpips_weights` (never downloaded at evaluation time)"
        )
    model = lpips.LPIPS(net=net, spatial=True, verbose=False)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@torch.no_grad()
def lpips_distance(pred, target, mask=None, net: str = "alex", device="cpu", model=None, batch: int = 64):
    """LPIPS on game pixels, per image: the spatial LPIPS map averaged over game pixels."""
    p, t = _check_pair(pred, target)
    h, w = p.shape[-3], p.shape[-2]
    weights = torch.from_numpy(game_weights(mask, h, w)).float().to(device)
    model = model if model is not None else get_lpips_model(net, device)
    lead = p.shape[:-3]
    p2 = torch.from_numpy(p.reshape(-1, h, w, 3)).float().permute(0, 3, 1, 2)
    t2 = torch.from_numpy(t.reshape(-1, h, w, 3)).float().permute(0, 3, 1, 2)
    out = []
    for i in range(0, p2.shape[0], batch):
        a = p2[i : i + batch].to(device) * 2 - 1  # lpips expects [-1, 1]
        b = t2[i : i + batch].to(device) * 2 - 1
        dmap = model(a, b).float()  # (b, 1, H, W)
        if dmap.shape[-2:] != (h, w):
            dmap = torch.nn.functional.interpolate(dmap, size=(h, w), mode="bilinear", align_corners=False)
        out.append(((dmap[:, 0] * weights).sum(dim=(-2, -1)) / weights.sum()).cpu())
    return _unbatch(torch.cat(out).double().numpy().reshape(lead))


def latent_mse(pred, target) -> np.ndarray:
    """Mean squared error over the token and channel axes: (..., N, D) -> (...)."""
    pred = torch.as_tensor(pred).float()
    target = torch.as_tensor(target).float()
    if pred.shape != target.shape:
        raise ValueError(f"latent shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    return ((pred - target) ** 2).mean(dim=(-2, -1)).cpu().double().numpy()


def latent_psnr(pred, target):
    """PSNR of latents, whose range is [-1, 1] (data range 2): 10 log10(4 / MSE)."""
    return psnr_from_mse(latent_mse(pred, target), data_range=2.0)


def is_finite_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def bootstrap_mean_ci(values, level: float = 0.95, resamples: int = 2000, seed: int = 0):
    """Percentile bootstrap interval of the mean over rows: values (n, H) -> (low (H,), high (H,)). Rows are the
    independent units (clips); columns (horizons) are resampled together, as they come from the same clip."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    n = v.shape[0]
    if n == 0:
        raise ValueError("bootstrap_mean_ci: no samples")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, n, size=(resamples, n))].mean(axis=1)  # (resamples, H)
    alpha = (1 - level) / 2
    return np.quantile(means, alpha, axis=0), np.quantile(means, 1 - alpha, axis=0)


def clustered_bootstrap_mean_ci(values, groups, level: float = 0.95, resamples: int = 2000, seed: int = 0):
    """Two-stage percentile bootstrap interval of the mean over rows: values (n, H), groups (n,) (a video id per
    clip) -> (low (H,), high (H,)). Each resample draws the groups with replacement, then rows within each drawn
    group with replacement, and takes the mean of all rows drawn. Clips of one video share its scenes, so they are
    not independent: resampling clips alone (`bootstrap_mean_ci`) makes the interval too narrow. With one row per
    group this is `bootstrap_mean_ci` (same seed, same draws)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    g = np.asarray(groups)
    if v.shape[0] == 0:
        raise ValueError("clustered_bootstrap_mean_ci: no samples")
    if g.shape != (v.shape[0],):
        raise ValueError(f"clustered_bootstrap_mean_ci: {g.shape[0] if g.ndim else 0} groups for {v.shape[0]} rows")
    _, first, index = np.unique(g, return_index=True, return_inverse=True)
    members = [np.flatnonzero(index == k) for k in np.argsort(first)]  # groups in order of first appearance
    sizes = np.array([len(m) for m in members])
    padded = np.zeros((len(members), sizes.max()), np.int64)  # each group's rows, padded with its first row
    for k, m in enumerate(members):
        padded[k, : len(m)], padded[k, len(m) :] = m, m[0]
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(members), size=(resamples, len(members)))  # (R, G): the groups drawn
    within = (rng.random((resamples, len(members), sizes.max())) * sizes[drawn][..., None]).astype(np.int64)
    rows = padded[drawn[..., None], within]  # (R, G, max size)
    used = np.arange(sizes.max()) < sizes[drawn][..., None]  # a drawn group contributes its own size in rows
    sums = (v[rows] * used[..., None]).sum(axis=(1, 2))  # (R, H)
    means = sums / used.sum(axis=(1, 2))[:, None]
    alpha = (1 - level) / 2
    return np.quantile(means, alpha, axis=0), np.quantile(means, 1 - alpha, axis=0)
