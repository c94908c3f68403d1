"""Tokenizer speed on this machine: encode frames/s and train frames/s (forward + backward + AdamW step, with the
preset's loss: masked MSE + LPIPS on its per-batch frame subset) for each demo tokenizer preset.

    .venv/bin/python bench/tokenizer.py --quick      # < 60 s on 2 CPU cores
Last lines: tokenizer_encode_fps=<x> (the "demo" preset, the one `make demo` trains), then
tokenizer_encode_vs_decode_ratio=<x>: encode frames/s over a plain PyAV decode of the same 64x64 frames from an
H.264 file (the obvious alternative: keep decoding the video instead of storing latents; > 1 means encoding
once costs less than one more decode of the video). Every rate is the median of its repetitions after a warm-up,
and the encode reads the very frames the decode produced. --smoke: the suite's run (one repetition)."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
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
    x = torch.rand(64, s, s, 3, device=device).mul(255).to(torch.uint8)
    model.eval()
    enc_fps = 64 / median_seconds(lambda: encode_frames(model, x, device), reps)
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

    train_fps = xb.shape[0] * xb.shape[1] / median_seconds(step, reps)
    return {"params": count_params(model), "encode_fps": enc_fps, "train_fps": train_fps}


def median_seconds(work, reps: int) -> float:
    """The median wall time of `work()` over `reps` runs after one warm-up run: every rate here is timed this way."""
    work()
    times = []
    for _ in range(max(1, reps)):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def encode_frames(model, frames: torch.Tensor, device) -> torch.Tensor:
    """uint8 frames (n, H, W, 3) to latents, 64 frames per call with T=1, as the latents stage encodes them."""
    out = []
    with torch.no_grad(), autocast_context(device):
        for i in range(0, len(frames), 64):
            x = frames[i : i + 64].to(device).permute(0, 3, 1, 2).float().div_(255.0)[:, None]
            out.append(model.encode(x))
    return torch.cat(out)


def decode_video(path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def encode_vs_decode(model, device, reps: int, seconds: float) -> tuple[float, float]:
    """(encode frames/s, PyAV decode frames/s) on the same frames: a size x size, 20 fps H.264 clip decoded to
    arrays, and those decoded frames encoded; both as the median of `reps` passes after a warm-up pass."""
    from ahriuwu_core.testing import media

    size = model.cfg.image_size
    with tempfile.TemporaryDirectory() as tmp:
        path = media.make_clip(
            Path(tmp) / "decode.mp4", seconds=seconds, fps=20, width=size, height=size, pattern="textured"
        ).path
        frames = decode_video(path)
        decode_s = median_seconds(lambda: decode_video(path), reps)
    encode_s = median_seconds(lambda: encode_frames(model, torch.from_numpy(frames), device), reps)
    return len(frames) / encode_s, len(frames) / decode_s


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="few repetitions (< 60 s on 2 cores)")
    ap.add_argument("--smoke", action="store_true", help="the suite's run: one repetition, a 2 s clip")
    ap.add_argument("--presets", nargs="+", default=["demo/cnn", "demo/transformer"], help="PRESET/KIND")
    ap.add_argument("--no-lpips", action="store_true", help="train step without the LPIPS term")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    reps = 1 if args.smoke else 2 if args.quick else 10
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
    torch.manual_seed(0)
    model = build_tokenizer(main_cfg.kind, main_cfg.model).to(device).eval()
    encode, decode = encode_vs_decode(model, device, max(3, reps), 2.0 if args.smoke else 10.0)
    print(f"same clip: encode {encode:.1f} frames/s, pyav_decode_fps={decode:.1f}")
    print(f"tokenizer_encode_vs_decode_ratio={encode / decode:.3f}")


if __name__ == "__main__":
    main()
