"""Time the evaluation at demo size on CPU (untrained models: the cost does not depend on weights).

    .venv/bin/python bench/evaluate.py [--frames STORE ...] [--clips-per-video 1] [--steps 4 16]
    .venv/bin/python bench/evaluate.py --preset demo --split test validation --videos 4 2 --no-compare
    .venv/bin/python bench/evaluate.py --assets /tmp/root --preset demo      # that data root's validation videos

Builds the demo-preset CNN tokenizer and world model from their configs, runs `evaluate` on frames stores scored
as `--split` (default validation: the videos design choices may look at): the given `--frames`, the stores of
those splits in the `--assets` data root's manifest, or demo videos rendered and extracted into bench/out/
(`--videos` per split). Prints the phase timings. Unless `--no-compare`, then the same evaluation one clip at a
time (batch size 1, the obvious way to write it), interleaved, best of 2 each; last line:
`evaluate_batched_speedup_vs_one_clip=<x>`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import torch

from ahriuwu_core.demo.motion import estimate_scroll
from ahriuwu_core.dynamics.model import WorldModel
from ahriuwu_core.eval.config import EvalConfig
from ahriuwu_core.eval.run import evaluate
from ahriuwu_core.presets import get_preset
from ahriuwu_core.tokenizer.build import build_tokenizer
from ahriuwu_core.training.checkpoint import save_checkpoint

OUT = Path(os.environ.get("BENCH_OUT", Path(__file__).parent / "out" / "evaluate"))


def demo_stores(count: int) -> list[Path]:
    """`count` distinct 5 s demo videos, rendered and extracted once."""
    from ahriuwu_core.data.frames import FramesConfig, extract_frames
    from ahriuwu_core.demo.video import DemoConfig, write_demo_videos

    stores = []
    for mp4 in write_demo_videos(OUT / "videos", DemoConfig(num_videos=count, duration_s=5.0), log=lambda m: None):
        store = OUT / f"{mp4.stem}.zarr"
        if not store.exists():
            extract_frames(
                mp4, store, FramesConfig(hud_layout="demo"), actions_path=mp4.with_name(mp4.stem + ".actions.json")
            )
        stores.append(store)
    return stores


def split_stores(args) -> dict[str, list[Path]]:
    if args.frames:
        return {split: list(args.frames) for split in args.split}
    if args.assets:
        from ahriuwu_core.data.manifest import read_manifest, stores_by_split

        by_split = stores_by_split(args.assets, read_manifest(args.assets), "frames")
        return {split: by_split[split] for split in args.split}
    counts = (args.videos * len(args.split))[: len(args.split)]
    stores = demo_stores(sum(counts))
    out, start = {}, 0
    for split, n in zip(args.split, counts):
        out[split], start = stores[start : start + n], start + n
    return out


def camera_tracks(args):
    """The demo's true camera track per store (the scroll oracle baseline), from the videos' sidecars."""
    from ahriuwu_core.data.layout import DataLayout
    from ahriuwu_core.demo.motion import camera_track

    if args.frames:
        return None
    if args.assets:
        return lambda store: camera_track(DataLayout(args.assets).video_dir(Path(store).stem) / "actions.json", store)
    return lambda store: camera_track(OUT / "videos" / f"{Path(store).stem}.actions.json", store)


def main():
    global OUT  # --out moves every generated file
    p = argparse.ArgumentParser()
    p.add_argument("--frames", nargs="*", type=Path)
    p.add_argument("--assets", type=Path, help="a data root: score the stores of --split from its manifest")
    p.add_argument("--split", nargs="+", default=["validation"], choices=("validation", "test"))
    p.add_argument("--videos", type=int, nargs="+", default=[2], help="rendered demo videos per split")
    p.add_argument("--clips-per-video", type=int, default=1)
    p.add_argument("--steps", type=int, nargs="+", default=[4, 64])
    p.add_argument("--context", type=int, default=16)
    p.add_argument("--horizon", type=int, default=16)
    p.add_argument("--no-zero-noise", action="store_true")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--preset", default="", help="use this preset's EvalConfig (ahriuwu_core.presets) instead")
    p.add_argument("--no-compare", action="store_true", help="time the batched evaluation once, nothing else")
    p.add_argument("--out", type=Path, default=OUT, help="where the models, rendered videos and reports go")
    args = p.parse_args()
    OUT = args.out
    if args.threads:
        torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    demo = get_preset("demo")
    tok_cfg = demo.tokenizer_config("cnn")
    tok = build_tokenizer(tok_cfg.kind, tok_cfg.model)
    wm = WorldModel(dataclasses.replace(demo.dynamics.model, num_tokens=tok.num_tokens, token_dim=tok.token_dim))
    save_checkpoint(OUT / "tokenizer.pt", model=tok, config=dataclasses.asdict(tok.cfg), kind=tok_cfg.kind)
    save_checkpoint(
        OUT / "dynamics.pt",
        model=wm,
        config=dataclasses.asdict(wm.cfg),
        kind="dynamics",
        extra={"train_config": {"context_noise": demo.dynamics.context_noise}},
    )
    stores = split_stores(args)
    cfg = EvalConfig(
        context=args.context,
        horizon=args.horizon,
        sampling_steps=tuple(args.steps),
        clips_per_video=args.clips_per_video,
        also_zero_context_noise=not args.no_zero_noise,
    )
    if args.preset:
        cfg = get_preset(args.preset).evaluation
    print(cfg)
    print({split: [s.stem for s in paths] for split, paths in stores.items()})
    runs = [("batched", dataclasses.replace(cfg, gif=False))]
    if not args.no_compare:
        runs.append(("one", dataclasses.replace(cfg, batch_size=1, gif=False)))
    best = {name: float("inf") for name, _ in runs}
    for _ in range(1 if args.no_compare else 2):
        for name, c in runs:
            t = time.perf_counter()
            result = evaluate(
                OUT / "tokenizer.pt",
                OUT / "dynamics.pt",
                stores,
                c,
                OUT / f"report_{name}",
                log=lambda s: None,
                estimate_motion=estimate_scroll,
                camera_track=camera_tracks(args),
            )
            best[name] = min(best[name], time.perf_counter() - t)
            clips = {s: result["metrics"][s]["clips"] for s in result["metrics"]["splits"]}
            print(f"{name} (batch {c.batch_size}): {time.perf_counter() - t:.1f}s, clips {clips}")
    print(f"threads={torch.get_num_threads()}")
    print(json.dumps(result["metrics"]["timings_s"], indent=1))
    if not args.no_compare:
        print(f"evaluate_batched_speedup_vs_one_clip={best['one'] / best['batched']:.2f}")


if __name__ == "__main__":
    main()
