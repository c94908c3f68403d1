"""Tokenizer speed on this machine: encode frames/s and train frames/s (forward + backward + AdamW step, with the
preset's loss: masked MSE + LPIPS on its per-batch frame subset) for each demo tokenizer preset.

    .venv/bin/python bench/tokenizer.py --quick      # < 60 s on 2 CPU cores
Last lines: tokenizer_encode_fps=<x> (the "demo" preset, the one `make demo` trains), then
tokenizer_encode_vs_decode_ratio=<x>: encode frames/s over a plain PyAV decode of the same 64x64 frames from an
H.264 file (the obvious alternative: keep decoding the video instead of storing latents; > 1 means encoding
once costs less than one more decode of the video)."""

from __future__ import annotations

import argparse
import time

import torch

from ahriuwu_core.presets import get_preset
from ahriuwu_core.tokenizer import build_tokenizer, count_params
from ahriuwu_core.tokenizer.losses import ReconstructionLoss, build_lpips
from ahriuwu_core.training.optim import OptimConfig, make_optimizer
from ahriuwu_core.training.precision import autocast_context


def bench_preset(name: str, device: torch.device, reps: int, lpips: bool) -> dict:
    preset, _, kind = name.partition("/")
    cfg = get_preset(preset).tokenizer_config(kind)
    torch.manual_seed(0)
    model = build_tokenizer(cfg.kind, cfg.model).to(device)
    s = model.cfg.image_size
    # encode: 64 frames per call, T=1 (as encode_video does)
    x = torch.rand(64, 1, 3, s, s, device=device)
    model.eval()
    with torch.no_grad(), autocast_context(device):
        model.encode(x)  # warm-up
        t0 = time.perf_counter()
        for _ in range(reps):
            model.encode(x)
        enc_fps = reps * 64 / (time.perf_counter() - t0)
    # train step at the preset's batch shape
    model.train()
    xb = torch.rand(cfg.batch_size, cfg.frames_per_sample, 3, s, s, device=device)
    game = torch.ones(1, 1, 1, s, s, device=device)
    lp = build_lpips(cfg.lpips_net, True, device) if (lpips and cfg.lpips_weight > 0) else None
    loss_fn = ReconstructionLoss(cfg.lpips_weight if lp is not None else 0.0, lp, cfg.lpips_frames)
    opt = make_optimizer(model, OptimConfig())

    def step():
        with autocast_context(device):
            recon, _ = model(xb, mask_ratio_max=cfg.mask_max if cfg.kind == "transformer" else 0.0)
        loss, _ = loss_fn(recon.float(), xb, game)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        step()
    train_fps = reps * xb.shape[0] * xb.shape[1] / (time.perf_counter() - t0)
    return {"params": count_params(model), "encode_fps": enc_fps, "train_fps": train_fps}


def pyav_decode_fps(size: int, seconds: float = 10.0) -> float:
    """Frames/s of decoding a size x size, 20 fps H.264 clip to RGB arrays with PyAV (best of 3)."""
    import tempfile
    from pathlib import Path

    import av

    from ahriuwu_core.testing import media

    path = media.make_clip(
        Path(tempfile.mkdtemp()) / "decode.mp4", seconds=seconds, fps=20, width=size, height=size, pattern="textured"
    ).path
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        with av.open(str(path)) as container:
            n = sum(1 for f in container.decode(video=0) if f.to_ndarray(format="rgb24") is not None)
        best = min(best, time.perf_counter() - t0)
    return n / best


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="few repetitions (< 60 s on 2 cores)")
    ap.add_argument("--presets", nargs="+", default=["demo/cnn", "demo/transformer"], help="PRESET/KIND")
    ap.add_argument("--no-lpips", action="store_true", help="train step without the LPIPS term")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    reps = 2 if args.quick else 10
    print(f"device={device} threads={torch.get_num_threads()} reps={reps}")
    results = {}
    for name in args.presets:
        r = bench_preset(name, device, reps, lpips=not args.no_lpips)
        results[name] = r
        print(
            f"{name}: params={r['params']:,} encode {r['encode_fps']:.1f} frames/s, train {r['train_fps']:.1f} frames/s"
        )
    main_name = "demo/cnn" if "demo/cnn" in results else args.presets[0]
    print(f"tokenizer_encode_fps={results[main_name]['encode_fps']:.1f}")
    main_cfg = get_preset(main_name.partition("/")[0]).tokenizer_config(main_name.partition("/")[2])
    decode = pyav_decode_fps(build_tokenizer(main_cfg.kind, main_cfg.model).cfg.image_size)
    print(f"pyav_decode_fps={decode:.1f}")
    print(f"tokenizer_encode_vs_decode_ratio={results[main_name]['encode_fps'] / decode:.3f}")


if __name__ == "__main__":
    main()
