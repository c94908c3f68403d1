"""Play speed: one session of the play server's rollout (`ahriuwu_core.play.PlaySession`) on the model `make demo`
trained, at K=4 on one CPU thread, for 2,000+ frames.

    .venv/bin/python bench/play.py --quick        # < 60 s: far probe at frame 600, the frames between at K=1
    .venv/bin/python bench/play.py                # every frame at K=4, far probe at frame 2,000
    .venv/bin/python bench/play.py --smoke        # the suite's run: far probe at frame 100
    .venv/bin/python bench/play.py --data-root assets --device cuda

Latency is a frame's whole cost (sampling, the fused commit, decoding), the median over 21 frames around frame
20 and around frame 2,000 (600 with --quick: the window is full long before, so the cost per frame is already
the steady one); the cost of a frame depends on its position and the cache, not on how earlier frames were
sampled, which is why --quick may fill the gap at K=1. Prints:
  play_fps=<x>                               frames per second at K=4 (1 / mean latency of the 42 probed frames) (goal
                                             >= 20: real time at 20 fps)
  play_latency_ratio_late_vs_early=<x>       latency at frame 2,000 / at frame 20 (goal <= 1.2)
  play_rss_ratio_late_vs_early=<x>           resident memory at frame 2,000 / at frame 20 (goal <= 1.1)
and, for comparison, the same session with an unbounded cache (the obvious alternative to the sliding window):
  unbounded_latency_ratio_f500_vs_f20=<x>    latency at frame 500 (250 with --quick) / at frame 20, every frame kept
With --steer (the default without --quick), for the demo's action space: from every clip a dream holds each of
the four straight moves for 40 frames at K=4, and the demo's motion estimate says whether the view scrolled
against the move (the camera follows the champion):
  play_steer_agreement_<move>=<x>            fraction of frames that did (goal >= 0.7), and the mean scroll speed
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(world, frames: int, probes: tuple[int, ...], filler_steps: int, window: int | None = None) -> dict:
    """Step one session `frames` times, moving in a new direction every 20 frames; around each probe frame use
    K=4 and record latencies and RSS."""
    from ahriuwu_core.play.session import PlaySession

    session = PlaySession(world, seed=0)
    session.reset(0, "dream")
    if window is not None:
        session.dreamer.window = session.dreamer.cache.window = window
    near = {p: [] for p in probes}
    rss = {}
    for i in range(1, frames + 1):
        session.set_action([1 + (i // 20) % 8] + [0] * (len(world.num_classes) - 1))
        probe = next((p for p in probes if abs(i - p) <= 10), None)
        session.set_steps(4 if probe is not None else filler_steps)
        result = session.step()
        if probe is not None:
            near[probe].append(result["latency_ms"])
            if i == probe:
                rss[probe] = rss_mb()
    return {
        "latency_ms": {p: statistics.median(v) for p, v in near.items()},
        "rss_mb": rss,
        "k4_latencies": [x for v in near.values() for x in v],
        "cached": session.cached_frames(),
    }


def steer(world, frames: int = 40) -> None:
    """Hold each straight move from every clip; print the agreement and the scroll speed (pixels per frame)."""
    import numpy as np

    from ahriuwu_core.data.conventions import MOVE_UNIT
    from ahriuwu_core.demo.motion import estimate_scroll
    from ahriuwu_core.play.session import PlaySession

    for name, move in (("east", 1), ("north", 3), ("west", 5), ("south", 7)):
        agree, along = [], []
        for clip in range(len(world.clips)):
            session = PlaySession(world, seed=clip)
            prev = session.reset(clip, "dream")
            session.set_action([move, 0])
            for _ in range(frames):
                frame = session.step()["frame"]
                dx, dy = estimate_scroll(prev, frame)
                prev = frame
                ux, uy = MOVE_UNIT[move]
                speed = -(ux * dx + uy * dy)  # scroll against the move, in pixels
                norm = float(np.hypot(dx, dy))
                agree.append(norm > 1e-6 and speed / norm >= np.cos(np.pi / 4))
                along.append(speed)
        print(
            f"steer {name}: {len(agree)} frames from {len(world.clips)} clips, scroll against the move "
            f"{np.mean(along):+.3f} px/frame on average"
        )
        print(f"play_steer_agreement_{name}={np.mean(agree):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="under a minute: the far probe at frame 600, fillers at K=1")
    ap.add_argument("--smoke", action="store_true", help="the suite's run: the far probe at frame 100")
    ap.add_argument("--data-root", default=str(ROOT / "assets"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--steer",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure steering (default: on without --quick)",
    )
    args = ap.parse_args()
    from ahriuwu_core.play.server import data_root_inputs
    from ahriuwu_core.play.session import PlayConfig, load_world

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    tokenizer, dynamics, stores = data_root_inputs(Path(args.data_root))
    world = load_world(tokenizer, dynamics, stores, PlayConfig(), device=args.device)
    print(
        f"model {dynamics} ({world.model.num_params() / 1e6:.1f}M params), window {world.window} frames, "
        f"{world.image_size[0]}x{world.image_size[1]}, device {args.device}, {args.threads} thread(s)"
    )
    filler = 1 if args.quick or args.smoke else 4
    late_at = 100 if args.smoke else 600 if args.quick else 2000
    bounded = run(world, late_at + 10, (20, late_at), filler)
    early, late = bounded["latency_ms"][20], bounded["latency_ms"][late_at]
    print(
        f"windowed: latency {early:.1f} ms at frame 20, {late:.1f} ms at frame {late_at}; RSS "
        f"{bounded['rss_mb'][20]:.0f} MB -> {bounded['rss_mb'][late_at]:.0f} MB; {bounded['cached']} frames cached"
    )
    far = 60 if args.smoke else 250 if args.quick else 500  # an unbounded cache gets slow
    unbounded = run(world, far + 10, (20, far), filler, window=0)
    u_early, u_late = unbounded["latency_ms"][20], unbounded["latency_ms"][far]
    print(
        f"unbounded: latency {u_early:.1f} ms at frame 20, {u_late:.1f} ms at frame {far}; "
        f"{unbounded['cached']} frames cached"
    )
    print(f"play_fps={1000.0 / statistics.mean(bounded['k4_latencies']):.1f}")
    print(f"play_latency_ratio_late_vs_early={late / early:.3f}")
    print(f"play_rss_ratio_late_vs_early={bounded['rss_mb'][late_at] / bounded['rss_mb'][20]:.3f}")
    print(f"unbounded_latency_ratio_f{far}_vs_f20={u_late / u_early:.3f}")
    if args.steer if args.steer is not None else not (args.quick or args.smoke):
        if not world.move_keys:
            print("steer: the action space is not the demo's 8-way move; skipped")
        else:
            steer(world)
    print(f"bench wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
