"""How far a linear next-frame filter chosen by the action gets, alone: the reference the action-kernel prior
(`DynamicsConfig.prior_kernel`) is meant to reach, on the latents and frames that `make demo` left.

    .venv/bin/python bench/linear_prior.py                  # 3x3 filter, the demo's validation clips
    .venv/bin/python bench/linear_prior.py --kernel 1 --assets /tmp/root

Fits, by exact least squares on the training videos' standardized latents, one k x k filter (all channels, and a
bias) per move class, mapping frame t-1's latent grid to frame t's (`actions[t]` led into frame t). Then rolls it
out alone from the last context frame of each evaluation clip (16 per validation video, `--split`; the
evaluation's clip starts) with the true moves, decodes with the tokenizer and prints the PSNR margin over
persistence (copying the last context frame) outside the HUD at h=1/2/4/8/16, with 95% intervals that resample
videos, then clips within them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import zarr

from ahriuwu_core.data.manifest import read_manifest, stores_by_split
from ahriuwu_core.dynamics.prior import neighbourhoods
from ahriuwu_core.eval.rollouts import clip_starts
from ahriuwu_core.images import metrics as M
from ahriuwu_core.tokenizer.build import load_tokenizer

HORIZONS = (1, 2, 4, 8, 16)


def read_latents(store: Path):
    g = zarr.open_group(str(store), mode="r")
    z = torch.from_numpy(np.asarray(g["latents"][...], np.float32))
    side = int(round(z.shape[1] ** 0.5))
    return z.view(len(z), side, side, -1).permute(0, 3, 1, 2), np.asarray(g["actions"][...])[:, 0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--assets", default="assets")
    ap.add_argument("--kernel", type=int, default=3)
    ap.add_argument("--clips-per-video", type=int, default=16)
    ap.add_argument(
        "--split",
        default="validation",
        choices=("validation", "test"),
        help="the videos scored (test: only for a final score, never to choose)",
    )
    args = ap.parse_args()
    root, k = Path(args.assets), args.kernel
    manifest = read_manifest(root)
    train = [read_latents(s) for s in stores_by_split(root, manifest, "latents")["train"]]
    every = torch.cat([z for z, _ in train])
    mean, std = every.mean((0, 2, 3), keepdim=True), every.std((0, 2, 3), keepdim=True)
    width = every.shape[1] * k * k + 1
    xtx, xty = {}, {}
    for z, moves in train:
        z = (z - mean) / std
        cols, target = neighbourhoods(z[:-1], k).double(), z[1:].flatten(2).transpose(1, 2).double()
        for m in np.unique(moves[1:]):
            sel = torch.from_numpy(moves[1:] == m)
            x, y = cols[sel].reshape(-1, width), target[sel].reshape(-1, target.shape[-1])
            xtx[m] = xtx.get(m, 0) + x.T @ x
            xty[m] = xty.get(m, 0) + x.T @ y
    filters = {
        m: torch.linalg.solve(xtx[m] + 1e-1 * torch.eye(width, dtype=torch.float64), xty[m]).float() for m in xtx
    }
    tokenizer = load_tokenizer(root / "tokenizer" / "tokenizer.pt")
    context, horizon = 16, max(HORIZONS)
    margins, videos = [], []
    for store in stores_by_split(root, manifest, "frames")[args.split]:
        video = Path(store).stem
        z, moves = read_latents(root / "latents" / f"{video}.zarr")
        z = (z - mean) / std
        g = zarr.open_group(str(store), mode="r")
        frames, hud = g["frames"], np.asarray(g["hud_mask"][...]) if "hud_mask" in g else None
        for s in clip_starts(len(z), context + horizon, args.clips_per_video):
            last = s + context - 1
            cur, preds = z[last], []
            for h in range(1, horizon + 1):
                m = int(moves[last + h])
                if m not in filters:
                    raise ValueError(f"{video}: move {m} never seen in the training videos")
                cur = (neighbourhoods(cur[None], k)[0] @ filters[m]).T.reshape(cur.shape)
                preds.append(cur)
            lat = (torch.stack(preds) * std + mean).flatten(2).transpose(1, 2)
            with torch.no_grad():
                pred = tokenizer.decode(lat[None])[0].permute(0, 2, 3, 1).numpy()
            truth = np.asarray(frames[last + 1 : last + 1 + horizon]).astype(np.float32) / 255
            keep = np.repeat(np.asarray(frames[last])[None].astype(np.float32) / 255, horizon, 0)
            mask = None if hud is None else np.asarray(hud)
            margins.append(np.asarray(M.psnr(pred, truth, mask)) - np.asarray(M.psnr(keep, truth, mask)))
            videos.append(video)
    margins = np.stack(margins)
    low, high = M.clustered_bootstrap_mean_ci(margins, videos)
    out = {"kernel": k, "split": args.split, "videos": len(set(videos)), "clips": len(margins)}
    for h in HORIZONS:
        i = h - 1
        out[f"h{h}"] = [round(float(margins[:, i].mean()), 2), round(float(low[i]), 2), round(float(high[i]), 2)]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
