"""Reading TensorBoard event files back with TensorBoard's own reader."""

from __future__ import annotations

from pathlib import Path


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} of every event file in `run_dir` (all of them: a resumed run adds one)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})  # 0: keep every point
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def event_files(run_dir: Path) -> list[Path]:
    return sorted(Path(run_dir).glob("events.out.tfevents.*"))
