"""Remove older published models: `python -m ahriuwu_core.cli.prune_models --data-root assets --keep 5`
(`make prune-models`). Every published tokenizer and world model stays under `<stage>/models/` until this removes
it; the current one is always kept."""

from __future__ import annotations

import argparse
from pathlib import Path

from ahriuwu_core.data import models
from ahriuwu_core.data.layout import DataLayout


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ahriuwu_core.cli.prune_models", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default="assets")
    p.add_argument("--keep", type=int, default=5, help="newest models kept per stage, besides the current one")
    args = p.parse_args(argv)
    if args.keep < 0:
        p.error(f"--keep must be 0 or more, got {args.keep}")
    layout = DataLayout(Path(args.data_root))
    for stage in ("tokenizer", "dynamics"):
        removed = models.prune(layout, stage, args.keep)
        print(f"{stage}: removed {len(removed)} model(s){': ' if removed else ''}{', '.join(p.name for p in removed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
