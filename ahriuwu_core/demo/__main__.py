"""Write the demo game videos: `python -m ahriuwu_core.demo OUT_DIR [--num-videos N ...]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ahriuwu_core.demo.video import DemoConfig, write_demo_videos


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m ahriuwu_core.demo", description="Write the demo game videos.")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--num-videos", type=int, default=DemoConfig.num_videos)
    p.add_argument("--duration", type=float, default=DemoConfig.duration_s, help="seconds per video")
    p.add_argument("--fps", type=float, default=DemoConfig.fps)
    p.add_argument("--width", type=int, default=DemoConfig.width)
    p.add_argument("--height", type=int, default=DemoConfig.height)
    p.add_argument("--seed", type=int, default=DemoConfig.seed)
    args = p.parse_args(argv)
    cfg = DemoConfig(
        num_videos=args.num_videos,
        duration_s=args.duration,
        fps=args.fps,
        width=args.width,
        height=args.height,
        seed=args.seed,
    )
    write_demo_videos(args.out_dir, cfg)


if __name__ == "__main__":
    main()
