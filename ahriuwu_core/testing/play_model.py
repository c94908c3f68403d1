"""A small demo world model trained from scratch in a few CPU minutes, laid out as a data root (`make play
DATA_ROOT=...` serves it), for the play tests: demo videos -> frames -> manifest -> CNN tokenizer -> latents ->
world model, through the library's stage functions with the demo preset's configs, the world model shortened."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from ahriuwu_core.demo_game import write_demo_videos
from ahriuwu_core.frames import extract_frames
from ahriuwu_core.layout import DataLayout
from ahriuwu_core.manifest import build_manifest, read_manifest, write_manifest
from ahriuwu_core.presets import get_preset
from ahriuwu_core.split import SplitConfig


def train_small_demo_model(root: Path, num_videos: int = 4, duration_s: float = 20.0, player_speed: float = 200.0,
                           dynamics_steps: int = 300, dynamics_seconds: float = 240.0, log=print,
                           **model_changes) -> DataLayout:
    """The last video is held out. Idempotent per stage: finished outputs under `root` are reused."""
    import torch

    from ahriuwu_core.dynamics.train import train_dynamics
    from ahriuwu_core.tokenizer.encode import encode_video
    from ahriuwu_core.tokenizer.train import train_tokenizer

    layout = DataLayout(root)
    preset = get_preset("demo")
    t0 = time.perf_counter()
    videos = write_demo_videos(layout.demo_source, dataclasses.replace(preset.demo, num_videos=num_videos,
                                                                        duration_s=duration_s,
                                                                        player_speed=player_speed), log=lambda m: None)
    ids = [mp4.stem for mp4 in videos]
    for mp4 in videos:
        if not layout.frames_store(mp4.stem).exists():
            extract_frames(mp4, layout.frames_store(mp4.stem), preset.frames,
                           actions_path=mp4.with_name(mp4.stem + ".actions.json"))
    if not layout.manifest.exists():
        write_manifest(root, build_manifest(root, ids, SplitConfig(heldout_ids=(ids[-1],), heldout_fraction=0.0)))
    manifest = read_manifest(root)
    train = [layout.frames_store(v) for v in manifest["train"]]
    heldout = [layout.frames_store(v) for v in manifest["heldout"]]
    log(f"play model: {len(ids)} videos in {time.perf_counter() - t0:.0f} s")
    if not layout.tokenizer_checkpoint.exists():
        run = layout.run_dir("tokenizer", "small")
        train_tokenizer(train, heldout, preset.tokenizer_config("cnn"), run, log=lambda m: None, evaluate=False)
        (run / "tokenizer.pt").replace(layout.tokenizer_checkpoint)
    log(f"play model: tokenizer at {time.perf_counter() - t0:.0f} s")
    for v in manifest["train"]:
        if not layout.latents_store(v).exists():
            encode_video(layout.frames_store(v), layout.tokenizer_checkpoint, layout.latents_store(v))
    if not layout.dynamics_checkpoint.exists():
        cfg = preset.dynamics
        cfg = dataclasses.replace(cfg, steps=dynamics_steps, time_limit_s=dynamics_seconds, num_threads=1,
                                  model={**cfg.model, **model_changes})
        torch.manual_seed(0)
        run = layout.run_dir("dynamics", "small")
        train_dynamics([layout.latents_store(v) for v in manifest["train"]], cfg, run, log=lambda m: None)
        (run / "dynamics.pt").replace(layout.dynamics_checkpoint)
    log(f"play model: dynamics at {time.perf_counter() - t0:.0f} s")
    return layout
