"""The demo preset's tokenizer and world model, trained from scratch through the library's stage functions into a
data root laid out as `make demo` leaves it (so `make play DATA_ROOT=...` serves it): the demo videos, their
frames, the manifest with the preset's split, the CNN tokenizer, every video's latents and the world model.

The same configs as `make demo`, except that the world model always completes its schedule (no time limit), so
the result does not depend on the machine's speed. About 8 CPU minutes on 2 cores at the preset's 360 steps."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from ahriuwu_core.data import files
from ahriuwu_core.data.frames import extract_frames
from ahriuwu_core.data.layout import DataLayout
from ahriuwu_core.data.manifest import build_manifest, read_manifest, write_manifest
from ahriuwu_core.demo.video import write_demo_videos
from ahriuwu_core.presets import get_preset


def train_demo_model(
    root: Path,
    log=print,
    dynamics_steps: int | None = None,
    video_seconds: float | None = None,
    tokenizer_steps: int | None = None,
) -> DataLayout:
    """Idempotent per stage: finished outputs under `root` are reused. `dynamics_steps`, `tokenizer_steps`: shorter
    schedules than the preset's (the learning-rate schedules follow them); `video_seconds`: shorter demo videos."""
    import torch

    from ahriuwu_core.dynamics.train import train_dynamics
    from ahriuwu_core.tokenizer.encode import encode_video
    from ahriuwu_core.tokenizer.train import train_tokenizer

    layout = DataLayout(root)
    preset = get_preset("demo")
    t0 = time.perf_counter()
    demo = dataclasses.replace(preset.demo, duration_s=video_seconds or preset.demo.duration_s)
    videos = write_demo_videos(layout.demo_source, demo, log=lambda m: None)
    for mp4 in videos:
        if not layout.frames_store(mp4.stem).exists():
            extract_frames(
                mp4,
                layout.frames_store(mp4.stem),
                preset.frames,
                actions_path=mp4.with_name(mp4.stem + ".actions.json"),
            )
    if not layout.manifest.exists():
        write_manifest(root, build_manifest(root, [mp4.stem for mp4 in videos], preset.split))
    manifest = read_manifest(root)
    train = [layout.frames_store(v) for v in manifest["train"]]
    validation = [layout.frames_store(v) for v in manifest["validation"] or manifest["test"]]
    log(f"demo model: {len(videos)} videos in {time.perf_counter() - t0:.0f} s")
    if not layout.tokenizer_checkpoint.exists():
        run = layout.run_dir("tokenizer", "demo")
        cfg = preset.tokenizer_config("cnn")
        cfg = dataclasses.replace(cfg, steps=tokenizer_steps or cfg.steps)
        train_tokenizer(train, validation, cfg, run, log=lambda m: None, evaluate=False)
        files.replace(run / "tokenizer.pt", layout.tokenizer_checkpoint)
    log(f"demo model: tokenizer at {time.perf_counter() - t0:.0f} s")
    for v in [mp4.stem for mp4 in videos]:  # every video's latents, as `make demo` leaves them (benches read them)
        if not layout.latents_store(v).exists():
            encode_video(layout.frames_store(v), layout.tokenizer_checkpoint, layout.latents_store(v))
    if not layout.dynamics_checkpoint.exists():
        torch.manual_seed(0)
        run = layout.run_dir("dynamics", "demo")
        train_dynamics(
            [layout.latents_store(v) for v in manifest["train"]],
            dataclasses.replace(preset.dynamics, time_limit_s=0.0, steps=dynamics_steps or preset.dynamics.steps),
            run,
            log=lambda m: None,
        )
        files.replace(run / "dynamics.pt", layout.dynamics_checkpoint)
    log(f"demo model: world model at {time.perf_counter() - t0:.0f} s")
    return layout
