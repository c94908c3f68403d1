"""Learning curve of the demo world model: its margin over copy-last-frame (persistence) on the validation videos
and the action gap as training goes on, on the latents and frames that `make demo` left under assets/.

    .venv/bin/python bench/dynamics_curve.py --quick                        # < 5 min: 300 steps, 3 snapshots
    .venv/bin/python bench/dynamics_curve.py --steps 1500 --every 300
    .venv/bin/python bench/dynamics_curve.py --quick --set model.time_every=4 --set single_image_fraction=0.3

Trains the `demo` preset's dynamics (with `--set` overrides: any DynamicsTrainConfig field, `model.<field>` for
DynamicsConfig, `optim.<field>` for OptimConfig) on the train-split latents, keeps the resume checkpoint every
`--every` steps, then evaluates
each snapshot on 16 clips per validation video (`--split`; the test videos are for the final score, not for
choosing a design), context 16, horizon 16, K=4, no LPIPS. Per snapshot it prints one JSON line: the PSNR margin
over persistence at h=1/4/8/16 with its 95% interval (videos, then clips), the margins of `persistence_motion`,
the conditional-mean readout and the prior alone, the action gap at h=8 and the action agreement.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import torch

from ahriuwu_core.data.manifest import read_manifest, stores_by_split
from ahriuwu_core.demo.motion import estimate_scroll
from ahriuwu_core.dynamics.train import train_dynamics
from ahriuwu_core.eval.config import EvalConfig
from ahriuwu_core.eval.run import evaluate
from ahriuwu_core.presets import get_preset
from ahriuwu_core.training.checkpoint import read_checkpoint

HORIZONS = (1, 4, 8, 16)


def apply_overrides(cfg, pairs: list[str]):
    """'field=value', 'model.field=value' and 'optim.field=value' (value parsed as JSON, else a string)."""
    model, optim, top = {}, {}, {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if key.startswith("model."):
            model[key[len("model.") :]] = value
        elif key.startswith("optim."):
            optim[key[len("optim.") :]] = value
        else:
            top[key] = value
    return dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, **model), optim=dataclasses.replace(cfg.optim, **optim), **top
    )


def summarize(metrics: dict, split: str) -> dict:
    m = metrics[split]
    hs = m["horizons"]
    idx = [hs.index(h) for h in HORIZONS if h in hs]
    out = {}
    for series in ("model_k4", "model_k4_mean", "persistence_motion", "prior_only"):
        if m["psnr"].get(series) is None:
            continue
        margin = [m["psnr"][series][i] - m["psnr"]["persistence"][i] for i in idx]
        low = [m["psnr_margin_ci95_low"][series][i] for i in idx]
        high = [m["psnr_margin_ci95_high"][series][i] for i in idx]
        out[series] = {
            f"h{hs[i]}": [round(a, 2), round(b, 2), round(c, 2)] for i, a, b, c in zip(idx, margin, low, high)
        }
    gap = m["action_gap_db"]
    out["action_gap_db_h8"] = round(gap[hs.index(8)], 2) if gap and 8 in hs else None
    out["action_agreement"] = m["action_agreement"]
    out["persistence_psnr"] = {f"h{hs[i]}": round(m["psnr"]["persistence"][i], 2) for i in idx}
    out["clips"] = m["clips"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--assets", default="assets")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--every", type=int, default=300)
    ap.add_argument("--quick", action="store_true", help="300 steps, a snapshot every 100 (under 5 minutes)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--clips-per-video", type=int, default=16)
    ap.add_argument(
        "--split",
        default="validation",
        choices=("validation", "test"),
        help="the videos each snapshot is scored on (test: only for a final score, never to choose)",
    )
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.quick:
        args.steps, args.every = 300, 100
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.assets)
    manifest = read_manifest(root)
    train = stores_by_split(root, manifest, "latents")["train"]
    evaluated = {args.split: stores_by_split(root, manifest, "frames")[args.split]}
    cfg = dataclasses.replace(
        get_preset("demo").dynamics, steps=args.steps, ckpt_every=args.every, time_limit_s=0.0, num_threads=args.threads
    )
    cfg = apply_overrides(cfg, args.set)
    out = Path(args.out or tempfile.mkdtemp(prefix="dyn_curve_"))
    snaps: dict[int, Path] = {}
    done = threading.Event()
    result = {}

    def run():
        try:
            result.update(train_dynamics(train, cfg, out, log=lambda s: None))
        finally:
            done.set()

    worker = threading.Thread(target=run)
    t0 = time.time()
    worker.start()
    last, seen = out / "last.pt", None
    while not done.is_set() or (last.exists() and last.stat().st_mtime != seen):
        if last.exists() and last.stat().st_mtime != seen:
            seen = last.stat().st_mtime
            step = int(read_checkpoint(last).get("step", 0))
            if step and step not in snaps:
                snaps[step] = shutil.copy(last, out / f"snap_{step:06d}.pt")
        time.sleep(0.5)
    worker.join()
    print(
        json.dumps(
            {
                "train_seconds": round(time.time() - t0),
                "steps": args.steps,
                "overrides": args.set,
                "params": result.get("params"),
                "loss_last": result.get("loss_last"),
                "out": str(out),
            }
        )
    )
    tok = root / "tokenizer" / "tokenizer.pt"
    ecfg = EvalConfig(
        context=16,
        horizon=16,
        sampling_steps=(4,),
        also_zero_context_noise=False,
        gif=False,
        lpips_net=None,
        quick_eval=False,
        clips_per_video=args.clips_per_video,
        strip_horizons=(1, 4, 8, 16),
    )
    for step, path in sorted(snaps.items()):
        t = time.time()
        # the demo's scroll estimator, as the evaluation asset uses for the demo (persistence_motion, agreement)
        m = evaluate(
            tok, path, evaluated, ecfg, out / f"eval_{step:06d}", log=lambda s: None, estimate_motion=estimate_scroll
        )["metrics"]
        print(
            json.dumps(
                {"step": step, "split": args.split, "eval_seconds": round(time.time() - t), **summarize(m, args.split)}
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
