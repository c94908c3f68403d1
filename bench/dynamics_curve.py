"""Learning curve of the demo world model: how held-out PSNR (vs copy-last-frame) and the action gap move with
training steps, on the latents and frames that `make demo` left under assets/.

    .venv/bin/python bench/dynamics_curve.py --steps 2000 --every 250     # ~35 min on one core

Trains the `demo` preset's dynamics (1 thread) on the train-split latents, keeps a copy of the resume checkpoint
every `--every` steps, then evaluates each copy (K=4, 16 context frames, horizon 8, 2 clips per held-out video)
and the final model (the full evaluation: horizon 16, K=4 and K=64). Prints one JSON line per snapshot.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ahriuwu_core.dynamics.train import train_dynamics  # noqa: E402
from ahriuwu_core.evaluate import EvalConfig, evaluate  # noqa: E402
from ahriuwu_core.manifest import read_manifest, stores_by_split  # noqa: E402
from ahriuwu_core.presets import get_preset  # noqa: E402
from ahriuwu_core.training import read_checkpoint  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--assets", default="assets")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    root = Path(args.assets)
    manifest = read_manifest(root)
    train = stores_by_split(root, manifest, "latents")["train"]
    heldout = stores_by_split(root, manifest, "frames")["heldout"]
    cfg = dataclasses.replace(get_preset("demo").dynamics, steps=args.steps, ckpt_every=args.every,
                              time_limit_s=0.0, num_threads=1)
    out = Path(args.out or tempfile.mkdtemp(prefix="dyn_curve_"))
    snaps: dict[int, Path] = {}
    done = threading.Event()

    def run():
        try:
            train_dynamics(train, cfg, out, log=lambda s: None)
        finally:
            done.set()

    worker = threading.Thread(target=run)
    t0 = time.time()
    worker.start()
    last, seen = out / "last.pt", None
    while not done.is_set() or (last.exists() and last.stat().st_mtime != seen):
        if last.exists() and last.stat().st_mtime != seen:
            time.sleep(1.0)  # last.pt is renamed into place whole; give the writer a moment anyway
            seen = last.stat().st_mtime
            step = int(read_checkpoint(last).get("step", 0))
            if step and step not in snaps:
                snaps[step] = shutil.copy(last, out / f"snap_{step:06d}.pt")
        time.sleep(5.0)
    worker.join()
    print(json.dumps({"train_seconds": round(time.time() - t0), "steps": args.steps, "out": str(out)}))
    tok = root / "tokenizer" / "tokenizer.pt"
    quick = EvalConfig(context=16, horizon=8, sampling_steps=(4,), also_zero_context_noise=False, gif=False,
                       lpips_net=None, quick_eval=False, action_agreement=False, strip_horizons=(1, 4, 8))
    for step, path in sorted(snaps.items()):
        m = evaluate(tok, path, heldout, quick, out / f"eval_{step:06d}", log=lambda s: None)["metrics"]
        print(json.dumps({"step": step, "model_k4": [round(x, 2) for x in m["psnr"]["model_k4"]],
                          "persistence": [round(x, 2) for x in m["psnr"]["persistence"]],
                          "action_gap_db": [round(x, 2) for x in m["action_gap_db"]]}))
    full = EvalConfig(context=16, horizon=16, clips_per_video=2, zero_noise_steps=(4,))
    m = evaluate(tok, out / "dynamics.pt", heldout, full, out / "eval_final", log=lambda s: None)["metrics"]
    print(json.dumps({"final": {k: [round(x, 2) for x in v] for k, v in m["psnr"].items() if v},
                      "action_gap_db": [round(x, 2) for x in m["action_gap_db"]]}))
    h1 = m["psnr"]["model_k4"][0] - m["psnr"]["persistence"][0]
    print(f"final_h1_gain_vs_persistence_db={h1:.2f}")


if __name__ == "__main__":
    main()
