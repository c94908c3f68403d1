"""Evaluation on videos no model trained on: rollouts against baselines, action controllability, pictures, a
report.

    python -m ahriuwu_core.eval --tokenizer T.pt --dynamics D.pt --frames a.zarr b.zarr [--validation c.zarr] --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ahriuwu_core.eval.checks import run_checks
from ahriuwu_core.eval.config import EvalConfig
from ahriuwu_core.eval.run import evaluate


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ahriuwu_core.eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--tokenizer", required=True, type=Path, help="tokenizer checkpoint (.pt)")
    p.add_argument("--dynamics", required=True, type=Path, help="dynamics checkpoint (.pt)")
    p.add_argument("--frames", nargs="*", default=[], type=Path, help="test videos' frames stores (.zarr)")
    p.add_argument(
        "--validation",
        nargs="*",
        default=[],
        type=Path,
        help="validation videos' frames stores (.zarr), scored and reported beside the test videos",
    )
    p.add_argument("--out", required=True, type=Path, help="report folder")
    d = EvalConfig()
    p.add_argument("--context", type=int, default=d.context)
    p.add_argument("--horizon", type=int, default=d.horizon)
    p.add_argument("--steps", type=int, nargs="+", default=list(d.sampling_steps), help="sampling steps K values")
    p.add_argument("--context-noise", type=float, default=None, help="default: the checkpoint's training value")
    p.add_argument("--no-zero-noise", action="store_true", help="skip the context-noise-0 variant")
    p.add_argument("--clips-per-video", type=int, default=d.clips_per_video)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--strip-horizons", type=int, nargs="+", default=list(d.strip_horizons))
    p.add_argument("--no-gif", action="store_true")
    p.add_argument("--lpips-net", default=d.lpips_net, help="'alex', 'vgg' or 'none'")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--lineage", type=str, default=None, help="JSON dict (or @file.json) recorded in the report")
    args = p.parse_args(argv)
    lineage = None
    if args.lineage:
        text = Path(args.lineage[1:]).read_text() if args.lineage.startswith("@") else args.lineage
        lineage = json.loads(text)
    cfg = EvalConfig(
        context=args.context,
        horizon=args.horizon,
        sampling_steps=tuple(args.steps),
        context_noise=args.context_noise,
        also_zero_context_noise=not args.no_zero_noise,
        clips_per_video=args.clips_per_video,
        seed=args.seed,
        strip_horizons=tuple(args.strip_horizons),
        gif=not args.no_gif,
        lpips_net=None if args.lpips_net.lower() == "none" else args.lpips_net,
    )
    if not (args.frames or args.validation):
        p.error("give --frames (test videos) and/or --validation")
    stores = {"test": args.frames, "validation": args.validation}
    result = evaluate(args.tokenizer, args.dynamics, stores, cfg, args.out, lineage=lineage, device=args.device)
    checks = run_checks(result["metrics"])
    for name, (passed, details) in checks.items():
        print(f"check {name}: {'pass' if passed else 'FAIL'} {json.dumps(details, default=str)}")
    print(f"report: {result['report_path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
