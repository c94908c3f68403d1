"""Time the held-out evaluation at demo size on CPU (untrained models: the cost does not depend on weights).

    .venv/bin/python bench/evaluate.py [--frames STORE ...] [--clips-per-video 1] [--steps 4 16]

Builds the demo-preset CNN tokenizer and world model from their configs, runs `evaluate` on the given frames
stores (default: one demo video rendered and extracted into bench/out/), prints the phase timings. Then the same
evaluation one clip at a time (batch size 1, the obvious way to write it), interleaved, best of 2 each; last line:
`evaluate_batched_speedup_vs_one_clip=<x>`."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import torch

from ahriuwu_core.dynamics.model import DynamicsConfig, WorldModel
from ahriuwu_core.eval.config import EvalConfig
from ahriuwu_core.eval.run import evaluate
from ahriuwu_core.presets import get_preset
from ahriuwu_core.tokenizer.train import build_tokenizer
from ahriuwu_core.checkpoint import save_checkpoint

OUT = Path(os.environ.get("BENCH_OUT", Path(__file__).parent / "out" / "evaluate"))


def demo_store() -> Path:
    from ahriuwu_core.demo.video import DemoConfig, write_demo_videos
    from ahriuwu_core.frames import FramesConfig, extract_frames

    store = OUT / "demo_006.zarr"
    if not store.exists():
        mp4 = write_demo_videos(OUT / "videos", DemoConfig(num_videos=1, duration_s=5.0))[0]
        extract_frames(mp4, store, FramesConfig(hud_layout="demo"), actions_path=mp4.with_suffix(".actions.json"),
                       video_id="demo_006")
    return store


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--frames", nargs="*", type=Path)
    p.add_argument("--videos", type=int, default=2, help="repeat the default store this many times")
    p.add_argument("--clips-per-video", type=int, default=1)
    p.add_argument("--steps", type=int, nargs="+", default=[4, 64])
    p.add_argument("--context", type=int, default=16)
    p.add_argument("--horizon", type=int, default=16)
    p.add_argument("--no-zero-noise", action="store_true")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--preset", default="", help="use this preset's EvalConfig (ahriuwu_core.presets) instead")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    tok_cfg = get_preset("demo").tokenizer_config("cnn")
    tok = build_tokenizer(tok_cfg.kind, tok_cfg.model)
    dyn_preset = get_preset("demo").dynamics
    wm = WorldModel(DynamicsConfig(num_tokens=tok.num_tokens, token_dim=tok.token_dim, **dyn_preset.model))
    save_checkpoint(OUT / "tokenizer.pt", model=tok, config=dataclasses.asdict(tok.cfg), kind=tok_cfg.kind)
    save_checkpoint(OUT / "dynamics.pt", model=wm, config=dataclasses.asdict(wm.cfg), kind="dynamics",
                    extra={"train_config": {"context_noise": dyn_preset.context_noise}})
    stores = args.frames or [demo_store()] * args.videos
    cfg = EvalConfig(context=args.context, horizon=args.horizon, sampling_steps=tuple(args.steps),
                     clips_per_video=args.clips_per_video, also_zero_context_noise=not args.no_zero_noise)
    if args.preset:
        from ahriuwu_core.presets import PRESETS

        cfg = PRESETS[args.preset].evaluation
    print(cfg)
    one = dataclasses.replace(cfg, batch_size=1, gif=False)
    batched = dataclasses.replace(cfg, gif=False)
    best = {"batched": float("inf"), "one": float("inf")}
    for _ in range(2):
        for name, c in (("batched", batched), ("one", one)):
            t = time.perf_counter()
            result = evaluate(OUT / "tokenizer.pt", OUT / "dynamics.pt", stores, c, OUT / f"report_{name}",
                              log=lambda s: None)
            best[name] = min(best[name], time.perf_counter() - t)
            print(f"{name} (batch {c.batch_size}): {time.perf_counter() - t:.1f}s, {result['metrics']['clips']} clips")
    print(f"threads={torch.get_num_threads()}")
    print(json.dumps(result["metrics"]["timings_s"], indent=1))
    print(f"evaluate_batched_speedup_vs_one_clip={best['one'] / best['batched']:.2f}")


if __name__ == "__main__":
    main()
