"""Frame extraction benchmark: our PyAV extractor vs an ffmpeg CLI pipe, and peak memory vs clip length.

    .venv/bin/python bench/extract.py --quick     # < 60 s on 2 cores
    .venv/bin/python bench/extract.py             # 60 s 720p clip; 1 min vs 10 min 720p clips (slow to generate)

Speed: one 720p 30 fps clip (8 s with --quick, else 60 s) (`media.make_clip`, pattern "textured": a scrolling
noise texture so the codec works about as hard as on a panning game camera), extracted to 20 fps 64x64 by
  ours:   ahriuwu_core.data.frames.extract_frames (decode, pick frames by timestamp, resize, zarr write, hash)
  ffmpeg: ffmpeg -i clip -vf fps=20,scale=64:64 -f rawvideo -pix_fmt rgb24 -   (read through a pipe)
alternately, `repeats` times each; the best time of each counts (the machine is shared). Each tool's fixed cost
per call (ffmpeg's process start-up; our container open and store set-up), its best time on a 0.2 s clip, is
subtracted from its time, so the ratio compares the work per source frame: (ffmpeg_time - ffmpeg_fixed) /
(ours_time - ours_fixed). --smoke (the suite's run) uses a 1 s clip and 1 s vs 5 s memory clips at 160x90.

Memory: the extraction's own peak, i.e. the rise of the process's peak RSS (ru_maxrss) over its level after the
imports and a one-second warm-up extraction, for a short and a 10x longer clip, each in a fresh subprocess.
Imports alone are ~100 MB, so a whole-process ratio would hide a buffer that grows with the video; this delta
does not: an extractor that kept every output frame would read ~10 (the output grows 10x). --quick uses 6 s
vs 60 s at 320x180 (same 10x length ratio, lower resolution, to stay under a minute); the full run uses 1 min
vs 10 min at 720p.

The last line is `extract_fps_ratio_vs_ffmpeg=<ours/ffmpeg>` (goal >= 1.0); the one before it is
`extract_peak_rss_ratio_10min_vs_1min=<x>` (goal <= 1.2), and before that
`extract_peak_rss_rise_vs_all_frames_in_memory=<x>`: the long clip's rise over the size of all its output frames
(an extractor that kept them all would read >= 1). Rises are measured in KiB with a 1 KiB floor.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ahriuwu_core.data import frames
from ahriuwu_core.testing import media

ROOT = Path(__file__).resolve().parent.parent

OUT = ROOT / "bench" / "out"

_RSS_SCRIPT = """
import resource, sys
from ahriuwu_core.data import frames
frames.extract_frames(sys.argv[3], sys.argv[2], frames.FramesConfig())  # warm-up: codecs, zarr, numpy pools
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
st = frames.extract_frames(sys.argv[1], sys.argv[2], frames.FramesConfig())
print(st["num_frames"], before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def ffmpeg_binary() -> str:
    path = shutil.which("ffmpeg")
    if path:
        return path
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except ImportError:
        sys.exit("ffmpeg CLI not found: apt-get install -y ffmpeg (the Makefile's system-deps does it)")


def clip(name: str, seconds: float, width: int, height: int) -> Path:
    """Generate once, reuse on later runs (bench/out is git-ignored)."""
    path = OUT / f"{name}_{seconds:g}s_{width}x{height}.mp4"
    if not path.exists():
        t = time.perf_counter()
        media.make_clip(path, seconds=seconds, fps=30, width=width, height=height, pattern="textured")
        print(f"generated {path.name} in {time.perf_counter() - t:.1f}s", flush=True)
    return path


def time_ours(path: Path, cfg: frames.FramesConfig) -> tuple[float, int]:
    t = time.perf_counter()
    stats = frames.extract_frames(path, OUT / "bench_frames.zarr", cfg)
    return time.perf_counter() - t, stats["num_frames"]


def time_ffmpeg(ffmpeg: str, path: Path, cfg: frames.FramesConfig) -> tuple[float, int]:
    cmd = [
        ffmpeg,
        "-v",
        "error",
        "-i",
        str(path),
        "-vf",
        f"fps={cfg.fps},scale={cfg.width}:{cfg.height}",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-",
    ]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    n_bytes = 0
    for block in iter(lambda: proc.stdout.read(1 << 20), b""):
        n_bytes += len(block)
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed on {path}")
    return time.perf_counter() - t, n_bytes // (cfg.width * cfg.height * 3)


def peak_rss_mb(path: Path, warmup: Path) -> tuple[float, int]:
    """(MB the extraction of `path` added to the process's peak RSS, output frames)."""
    out = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(path), str(OUT / "rss_frames.zarr"), str(warmup)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.split()
    return max(int(out[2]) - int(out[1]), 1) / 1024, int(out[0])


def main() -> None:
    global OUT  # --out moves every generated file
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small clips, under a minute on 2 cores")
    ap.add_argument("--smoke", action="store_true", help="the suite's run: 1 s and tiny clips, 2 repeats")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--out", default=str(OUT), help="where the generated clips and stores go")
    args = ap.parse_args()
    OUT = Path(args.out)
    OUT.mkdir(parents=True, exist_ok=True)
    ffmpeg = ffmpeg_binary()
    cfg = frames.FramesConfig()
    repeats = args.repeats or (2 if args.smoke else 3 if args.quick else 5)

    speed_clip = clip("speed", 1 if args.smoke else 8 if args.quick else 60, 1280, 720)
    fixed_clip = clip("fixed", 0.2, 1280, 720)
    short_w, short_h = (160, 90) if args.smoke else (320, 180) if args.quick else (1280, 720)
    if args.smoke:
        short, long = clip("mem", 1, 160, 90), clip("mem", 5, 160, 90)
    elif args.quick:
        short, long = clip("mem", 6, 320, 180), clip("mem", 60, 320, 180)
    else:
        short, long = clip("mem", 60, 1280, 720), clip("mem", 600, 1280, 720)

    # Each tool's fixed cost per call (ffmpeg's process start-up; our container open and store set-up), timed on a
    # clip of a few frames, is subtracted, so that the ratio compares the per-frame work and not the start-up.
    ours, theirs, ours_fixed, theirs_fixed = [], [], [], []
    for _ in range(repeats):
        ours_fixed.append(time_ours(fixed_clip, cfg)[0])
        theirs_fixed.append(time_ffmpeg(ffmpeg, fixed_clip, cfg)[0])
        t, n_ours = time_ours(speed_clip, cfg)
        ours.append(t)
        t, n_ffmpeg = time_ffmpeg(ffmpeg, speed_clip, cfg)
        theirs.append(t)
    source_frames = int(round(float(speed_clip.stem.split("_")[1].rstrip("s")) * 30))
    print(f"speed clip: {speed_clip.name}, {source_frames} source frames -> {n_ours} frames (ffmpeg: {n_ffmpeg})")
    print(f"ours:   best {min(ours):.3f}s of {[round(x, 3) for x in ours]}  = {source_frames / min(ours):.0f} src fps")
    print(
        f"ffmpeg: best {min(theirs):.3f}s of {[round(x, 3) for x in theirs]}  = "
        f"{source_frames / min(theirs):.0f} src fps"
    )

    warmup = clip("warmup", 1, short_w, short_h)
    rss_short, n_short = peak_rss_mb(short, warmup)
    rss_long, n_long = peak_rss_mb(long, warmup)
    print(
        f"extraction peak RSS rise: {short.name} ({n_short} frames) {rss_short:.1f} MB; {long.name} ({n_long} "
        f"frames) {rss_long:.1f} MB; all output frames of the long clip would be "
        f"{n_long * cfg.width * cfg.height * 3 / 2**20:.1f} MB"
        + (" [quick: 6 s vs 60 s at 320x180 stand in for 1 vs 10 min]" if args.quick else "")
    )
    shutil.rmtree(OUT / "bench_frames.zarr", ignore_errors=True)
    shutil.rmtree(OUT / "rss_frames.zarr", ignore_errors=True)
    all_frames_mb = n_long * cfg.width * cfg.height * 3 / 2**20
    print(f"extract_peak_rss_rise_vs_all_frames_in_memory={rss_long / all_frames_mb:.3f}")
    print(f"extract_peak_rss_ratio_10min_vs_1min={rss_long / rss_short:.3f}")
    ours_work, theirs_work = min(ours) - min(ours_fixed), min(theirs) - min(theirs_fixed)
    print(f"fixed cost per call: ours {min(ours_fixed):.3f}s, ffmpeg {min(theirs_fixed):.3f}s (subtracted below)")
    print(f"extract_fps_ratio_vs_ffmpeg={theirs_work / max(ours_work, 1e-6):.3f}")


if __name__ == "__main__":
    main()
