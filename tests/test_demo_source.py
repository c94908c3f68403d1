"""The demo source is listed without rendering, so a sensor tick stays short; each demo video is rendered by the
`videos` step that fetches it."""

from __future__ import annotations

import time

from dagster import AssetKey, DagsterInstance, build_sensor_context, materialize

from tests._instance import scratch_project


def _tick(instance, resources):
    from pipeline.sensors import new_videos_sensor

    context = build_sensor_context(instance=instance, resources={k: resources[k] for k in ("storage", "project")})
    return new_videos_sensor(context)


def test_a_sensor_tick_on_a_fresh_demo_source_is_quick_and_the_fetch_renders(tmp_path, monkeypatch):
    from ahriuwu_core.presets import get_preset
    from pipeline.definitions import ALL_ASSETS
    from pipeline.resources import resources_from_env

    _, data_root = scratch_project(tmp_path, tmp_path / "unused", monkeypatch)
    monkeypatch.setenv("AHRIUWU_SOURCE", "demo")
    monkeypatch.setenv("AHRIUWU_PRESET", "demo")  # 8 videos of 30 s: about a minute to render them all
    expected = [f"demo_{k:03d}" for k in range(get_preset("demo").demo.num_videos)]
    with DagsterInstance.get() as instance:
        resources = resources_from_env()
        start = time.perf_counter()
        result = _tick(instance, resources)
        took = time.perf_counter() - start
        assert took < 5, f"the tick took {took:.1f} s"
        [request] = result.dynamic_partitions_requests
        assert sorted(request.partition_keys) == expected
        assert not list((data_root / "demo_source").glob("*.mp4"))  # nothing rendered yet

        # The fetch renders the one video it needs (the tiny preset's, to keep this short), sidecar included.
        monkeypatch.setenv("AHRIUWU_PRESET", "tiny")
        resources = resources_from_env()
        instance.add_dynamic_partitions("videos", ["demo_000"])
        done = materialize(
            ALL_ASSETS, selection=[AssetKey("videos")], partition_key="demo_000", instance=instance, resources=resources
        )
        assert done.success
        assert sorted(p.name for p in (data_root / "demo_source").iterdir()) == [
            "demo_000.actions.json",
            "demo_000.mp4",
        ]
        assert (data_root / "videos" / "demo_000" / "actions.json").exists()
        meta = done.asset_materializations_for_node("videos")[0].metadata
        assert meta["duration"].value >= get_preset("tiny").demo.duration_s - 0.1


def test_demo_videos_rendered_with_other_settings_are_rendered_again(tmp_path):
    from dataclasses import replace

    from ahriuwu_core import sources
    from ahriuwu_core.demo.video import DemoConfig, write_demo_videos

    cfg = DemoConfig(num_videos=2, duration_s=0.5, width=128, height=72)
    demo_dir = tmp_path / "demo_source"
    write_demo_videos(demo_dir, cfg, log=lambda m: None)
    other = replace(cfg, seed=cfg.seed + 1)
    source = sources.SourceConfig(kind="demo", demo=other)
    logged = []
    entries = sources.list_videos(source, tmp_path, log=logged.append)
    assert [e.video_id for e in entries] == ["demo_000", "demo_001"]
    assert not list(demo_dir.glob("*.mp4")) and len([m for m in logged if "other settings" in m]) == 2
    sources.fetch_video(entries[0], tmp_path / "videos", source, log=lambda m: None)
    import json

    sidecar = json.loads((demo_dir / "demo_000.actions.json").read_text())
    assert sidecar["demo"]["video_seed"] == other.seed * 1000
