"""Train a tokenizer from a preset:
`python -m ahriuwu_core.cli.train_tokenizer --preset demo --frames A.zarr B.zarr --heldout C.zarr --out DIR`."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from ..presets import get_preset
from ..tokenizer.train import train_tokenizer


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m ahriuwu_core.cli.train_tokenizer", description="Train a tokenizer on frames stores."
    )
    ap.add_argument("--preset", default="demo", help="a preset of ahriuwu_core.presets")
    ap.add_argument("--kind", default="", help="cnn or transformer (default: the preset's first)")
    ap.add_argument("--frames", nargs="+", required=True, help="training frames stores (.zarr)")
    ap.add_argument("--heldout", nargs="*", default=[], help="held-out frames stores (.zarr)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--outlive-parent",
        action="store_true",
        help="keep training when the launching process dies (default: checkpoint and stop)",
    )
    args = ap.parse_args(argv)
    cfg = dataclasses.replace(get_preset(args.preset).tokenizer_config(args.kind))
    if args.steps:
        cfg.steps = args.steps
    res = train_tokenizer(
        args.frames, args.heldout, cfg, Path(args.out), device=args.device, exit_with_parent=not args.outlive_parent
    )
    res.pop("strip_png", None)
    print(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
