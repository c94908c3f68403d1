"""Stale-only reruns: materialize a small instance, add one video, count what automation reruns.

Emulates the daemon tick by tick with the real definitions: the `new_videos` sensor's evaluation (it registers the
video, adds the partition and requests its fetch + frames), then Declarative Automation evaluations until they
request nothing. Training is on demand, so after one new video only its per-video stages should run.

    .venv/bin/python bench/rerun.py --quick

Last lines: `rerun_steps_ratio_vs_full=<x>` (steps the stale-only rerun ran / steps a full rematerialization of
the grown instance runs; the obvious alternative is rerunning everything), then
`steps_after_adding_one_video=<n>`, the per-video processing steps (frames, latents) that ran; expected 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny preset: 3 videos of 3 s (also the suite's run)")
    args = ap.parse_args()
    preset = "tiny" if args.quick else "demo"

    work = Path(tempfile.mkdtemp(prefix="ahriuwu-rerun-"))
    source = work / "source"
    os.environ.update(
        {
            "DAGSTER_HOME": str(work / "home"),
            "AHRIUWU_DATA_ROOT": str(work / "assets"),
            "AHRIUWU_PRESET": preset,
            "AHRIUWU_SOURCE": f"folder:{source}",
            "AHRIUWU_AUTOMATION": "off",
            "AHRIUWU_DEVICE": "cpu",
        }
    )
    (work / "home").mkdir(parents=True)
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", work / "home" / "dagster.yaml")

    from dagster import (
        AssetSelection,
        DagsterInstance,
        build_sensor_context,
        evaluate_automation_conditions,
        materialize,
    )

    from ahriuwu_core.demo.video import write_demo_videos
    from ahriuwu_core.presets import get_preset
    from pipeline.definitions import ALL_ASSETS, defs
    from pipeline.demo import run_all
    from pipeline.resources import resources_from_env
    from pipeline.sensors import new_videos_sensor

    demo_cfg = get_preset(preset).demo
    write_demo_videos(source, demo_cfg)
    instance = DagsterInstance.get()
    resources = resources_from_env()
    start = time.perf_counter()
    outcome = run_all(instance, resources, log=lambda m: None)
    assert all(outcome.values()), outcome
    print(f"initial instance: {len(outcome)} steps in {time.perf_counter() - start:.0f}s")

    # The automation state before the new video: everything is up to date, so this tick must request nothing; one
    # that did would be work the count below never sees.
    before = evaluate_automation_conditions(defs, instance)
    if before.total_requested:
        raise SystemExit(f"automation requested {before.total_requested} runs before any video was added")
    print("automation_requests_before_new_video=0")
    cursor = before.cursor

    # One new video appears at the source.
    extra = work / "extra"
    write_demo_videos(extra, replace(demo_cfg, num_videos=1, seed=demo_cfg.seed + 7))
    for f in extra.iterdir():
        shutil.copy(f, source / f.name.replace("demo_000", "new_video"))

    ran: Counter = Counter()

    def run(keys, partition):
        result = materialize(
            ALL_ASSETS,
            selection=AssetSelection.assets(*keys),
            instance=instance,
            resources=resources,
            partition_key=partition,
        )
        assert result.success
        for key in keys:
            ran[(key.to_user_string(), partition)] += 1

    with build_sensor_context(instance=instance, resources=resources, cursor=None) as ctx:
        sensor_result = new_videos_sensor(ctx)
    for request in sensor_result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    for request in sensor_result.run_requests:
        run([k for k in request.asset_selection], request.partition_key)

    for _tick in range(5):
        result = evaluate_automation_conditions(defs, instance, cursor=cursor)
        cursor = result.cursor
        wanted: dict = {}
        for asset in ALL_ASSETS:
            for partition in result.get_requested_partitions(asset.key):
                wanted.setdefault(partition, []).append(asset.key)
        if not wanted:
            break
        for partition, keys in wanted.items():
            run(keys, partition)

    for (asset, partition), n in sorted(ran.items(), key=str):
        print(f"ran {asset}[{partition}] x{n}")
    per_video = sum(n for (asset, _), n in ran.items() if asset in ("frames", "latents"))
    others = {k: n for k, n in ran.items() if k[0] not in ("videos", "frames", "latents") or k[1] != "new_video"}
    print(f"other_steps={sum(others.values())}")
    full = len(outcome) + 3  # the grown instance: the same graph plus the new video's videos, frames, latents
    print(f"rerun_steps_ratio_vs_full={sum(ran.values()) / full:.3f} ({sum(ran.values())} of {full} steps)")
    shutil.rmtree(work, ignore_errors=True)
    print(f"steps_after_adding_one_video={per_video}")


if __name__ == "__main__":
    main()
