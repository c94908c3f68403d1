"""Memory for long videos: a generated 2-hour clip through the frames stage and the latents encode, against a
1-minute clip, each in a fresh process.

    .venv/bin/python bench/long_video.py            # ~5 min on 2 cores (generating the 2 h clip is most of it)
    .venv/bin/python bench/long_video.py --minutes 30

Both stages stream: memory is bounded by a chunk, not by the video. Per stage and clip it prints the rise of the
process's peak RSS over its level after the imports and a warm-up run on a 1 s clip, and the size that holding
every output frame (or latent) in memory would take. Last lines: `long_video_frames_rss_ratio=<2h / 1min>` and
`long_video_latents_rss_ratio=<2h / 1min>` (goal <= 1.2 each).
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

from ahriuwu_core.testing import media

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "long_video"

_SCRIPT = """
import resource, sys, shutil
from pathlib import Path
from ahriuwu_core.data import frames
from ahriuwu_core.tokenizer import encode_video
clip, warm, out, tok = map(Path, sys.argv[1:5])
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cfg = frames.FramesConfig(width=64, height=64)
frames.extract_frames(warm, out / "warm.zarr", cfg)
encode_video(out / "warm.zarr", tok, out / "warm_lat.zarr")
a = peak()
st = frames.extract_frames(clip, out / "f.zarr", cfg)
b = peak()
encode_video(out / "f.zarr", tok, out / "lat.zarr")
c = peak()
print(st["num_frames"], a, b, c)
"""


def clip(seconds: float) -> Path:
    path = OUT / f"clip_{seconds:g}s.mp4"
    if not path.exists():
        t = time.perf_counter()
        media.make_clip(path, seconds=seconds, fps=20, width=160, height=90)
        print(f"generated {path.name} in {time.perf_counter() - t:.0f}s", flush=True)
    return path


def measure(path: Path, warm: Path, tok: Path) -> tuple[int, float, float]:
    """(frames, MB the frames stage added to the peak RSS, MB the latents encode added on top)."""
    work = OUT / f"work_{path.stem}"
    work.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(path), str(warm), str(work), str(tok)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.split()
    n, a, b, c = map(int, out[-4:])
    return n, max(b - a, 1) / 1024, max(c - b, 1) / 1024


def main() -> None:
    global OUT  # --out moves every generated file
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=120.0)
    ap.add_argument("--smoke", action="store_true", help="the suite's run: 20 s against 5 s instead of against 1 min")
    ap.add_argument("--out", default=str(OUT), help="where the generated clips and stores go")
    args = ap.parse_args()
    OUT = Path(args.out)
    OUT.mkdir(parents=True, exist_ok=True)
    from ahriuwu_core.presets import get_preset
    from ahriuwu_core.tokenizer import build_tokenizer
    from ahriuwu_core.training.checkpoint import save_checkpoint

    tok_cfg = get_preset("demo").tokenizer_config("cnn")
    tok = build_tokenizer(tok_cfg.kind, tok_cfg.model)  # untrained: the cost does not depend on the weights
    tok_path = save_checkpoint(OUT / "tokenizer.pt", model=tok, config=dataclasses.asdict(tok.cfg), kind="cnn")
    short_s, long_s = (5, 20) if args.smoke else (60, args.minutes * 60)
    warm, short, long = clip(1), clip(short_s), clip(long_s)
    n_s, f_s, l_s = measure(short, warm, tok_path)
    n_l, f_l, l_l = measure(long, warm, tok_path)
    frame_mb, latent_mb = n_l * 64 * 64 * 3 / 2**20, n_l * tok.num_tokens * tok.token_dim * 2 / 2**20
    print(f"{short_s:g} s ({n_s} frames): frames +{f_s:.1f} MB, latents +{l_s:.1f} MB")
    print(
        f"{long_s:g} s ({n_l} frames): frames +{f_l:.1f} MB, latents +{l_l:.1f} MB; holding every "
        f"output frame would take {frame_mb:.0f} MB, every latent {latent_mb:.0f} MB"
    )
    print(f"long_video_frames_rss_ratio={f_l / f_s:.3f}")
    print(f"long_video_latents_rss_ratio={l_l / l_s:.3f}")


if __name__ == "__main__":
    main()
