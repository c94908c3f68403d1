"""Train a world model from a preset: `python -m ahriuwu_core.cli.train_dynamics --config CONFIG.json --out DIR`,
or as N data-parallel ranks: `torchrun --nproc_per_node N -m ahriuwu_core.cli.train_dynamics ...`.

CONFIG.json (a path or an inline JSON object): {"preset": "demo", "train_stores": [paths] or "latents_dir": dir,
"device": "cpu"|"cuda", ...any DynamicsTrainConfig field ("model" and "optim" dicts merge over the preset)}.
DIR gets what `train_dynamics` writes; rerunning the same command resumes. The trainer stops (checkpointing) when
the process that started it dies, unless run with --outlive-parent.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from ..dynamics.distributed import distributed
from ..dynamics.train import train_dynamics
from ..dynamics.train_config import DynamicsTrainConfig
from ..presets import PRESETS


def config_from_json(obj: dict) -> tuple[DynamicsTrainConfig, list[Path], str | None]:
    """Parse the CLI JSON: preset + overrides + train stores (+ optional device)."""
    obj = dict(obj)
    preset = obj.pop("preset", None)
    stores = obj.pop("train_stores", None)
    latents_dir = obj.pop("latents_dir", None)
    device = obj.pop("device", None)
    if stores is None and latents_dir is not None:
        stores = sorted(p for p in Path(latents_dir).glob("*.zarr") if not p.name.startswith("."))  # no temps
    if not stores:
        raise ValueError("dynamics config: give 'train_stores' (list of latent stores) or 'latents_dir'")
    if preset and preset not in PRESETS:
        raise ValueError(f"unknown dynamics preset {preset!r}; choose from {sorted(PRESETS)}")
    base = dataclasses.asdict(PRESETS[preset].dynamics) if preset else {}
    for key in ("model", "optim"):
        if key in obj:
            obj[key] = {**base.get(key, {}), **obj[key]}
    return DynamicsTrainConfig.from_dict({**base, **obj}), [Path(s) for s in stores], device


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m ahriuwu_core.cli.train_dynamics", description="Train a world model from a preset."
    )
    ap.add_argument("--config", required=True, help="JSON file or inline JSON object")
    ap.add_argument("--out", required=True, help="output directory (resumes from OUT/last.pt)")
    ap.add_argument(
        "--outlive-parent",
        action="store_true",
        help="keep training when the launching process dies (default: checkpoint and stop)",
    )
    args = ap.parse_args(argv)
    text = args.config if args.config.lstrip().startswith("{") else Path(args.config).read_text()
    cfg, stores, device = config_from_json(json.loads(text))
    with distributed(device) as device:
        result = train_dynamics(stores, cfg, Path(args.out), device=device, exit_with_parent=not args.outlive_parent)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: result[k] for k in ("steps", "completed", "stopped_by", "loss_last", "params")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
