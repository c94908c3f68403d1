"""`python -m pipeline.remove_video`: one tiny clip fetched and extracted in a real Dagster instance, then removed:
partition and files go (history too, where the event log storage can wipe one partition), and the sensor does not
bring it back until the removal is undone."""

from __future__ import annotations

import pytest
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    DagsterInstance,
    SensorResult,
    build_sensor_context,
    evaluate_automation_conditions,
    materialize,
)

from ahriuwu_core.data import catalog
from ahriuwu_core.testing import media
from tests._instance import scratch_project


@pytest.fixture
def project(tmp_path, monkeypatch):
    src = tmp_path / "source"
    media.make_clip(src / "clip_a.mp4", seconds=1, width=96, height=64)
    media.make_clip(src / "clip_b.mp4", seconds=1, width=96, height=64)
    _, data_root = scratch_project(tmp_path, src, monkeypatch)
    from pipeline.assets import frames, videos
    from pipeline.definitions import ALL_ASSETS
    from pipeline.demo import register_source
    from pipeline.resources import resources_from_env

    instance = DagsterInstance.get()
    resources = resources_from_env()
    assert register_source(instance, resources) == ["clip_a", "clip_b"]
    result = materialize(
        ALL_ASSETS,
        selection=AssetSelection.assets(videos, frames),
        instance=instance,
        resources=resources,
        partition_key="clip_a",
    )
    assert result.success
    (data_root / "latents" / "clip_a.zarr").mkdir(parents=True)  # as if encoded (no training in this test)
    yield instance, resources, data_root
    instance.dispose()


def _materializations(instance, key: str, partition: str) -> int:
    return len(
        instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(key), asset_partitions=[partition]), limit=10
        ).records
    )


def _sensor_tick(instance, resources) -> SensorResult:
    from pipeline.sensors import new_videos_sensor

    context = build_sensor_context(instance=instance, resources={k: resources[k] for k in ("storage", "project")})
    return new_videos_sensor(context)


def test_remove_deletes_partition_and_files_states_history_truly_and_the_sensor_keeps_it_out(project, capsys):
    from pipeline.remove_video import main

    instance, resources, data_root = project
    files = [
        data_root / "catalog" / "clip_a.json",
        data_root / "videos" / "clip_a",
        data_root / "frames" / "clip_a.zarr",
        data_root / "latents" / "clip_a.zarr",
    ]
    assert all(p.exists() for p in files)
    assert _materializations(instance, "frames", "clip_a") == 1

    assert main(["clip_a", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "partition 'clip_a'" in out and "dataset_manifest" in out and "stale" in out
    for path in files:
        assert str(path) in out
        assert not path.exists(), path
    assert instance.get_dynamic_partitions("videos") == ["clip_b"]
    # The history it reports is the history the instance holds when read again: wiped where the storage can wipe
    # one partition, kept (and said so) on sqlite.
    reread = DagsterInstance.from_ref(instance.get_ref())
    kept = "stays in the event log" in out
    assert _materializations(reread, "frames", "clip_a") == (1 if kept else 0)
    # the sibling keeps everything
    assert (data_root / "catalog" / "clip_b.json").exists()
    assert catalog.removed_ids(data_root) == {"clip_a"}

    # The folder still holds clip_a.mp4, but the next sensor tick does not add it back.
    tick = _sensor_tick(instance, resources)
    requested = [r.partition_key for r in getattr(tick, "run_requests", None) or []]
    added = [k for req in getattr(tick, "dynamic_partitions_requests", None) or [] for k in req.partition_keys]
    assert "clip_a" not in requested + added
    assert not (data_root / "catalog" / "clip_a.json").exists()

    # Undo: the next tick adds it as new; the sensor requests no runs (automation does).
    assert main(["clip_a", "--restore"]) == 0
    tick = _sensor_tick(instance, resources)
    assert not (getattr(tick, "run_requests", None) or [])
    assert [k for req in tick.dynamic_partitions_requests for k in req.partition_keys] == ["clip_a"]
    assert catalog.catalog_entry(data_root, "clip_a")["url"].endswith("clip_a.mp4")
    # Automation fetches it again where its history went; where the event log kept it, Dagster still counts it as
    # materialized (hence the restore message: materialize it by hand).
    from pipeline.definitions import defs

    instance.add_dynamic_partitions("videos", ["clip_a"])
    requested = evaluate_automation_conditions(defs=defs, instance=instance).get_requested_partitions(
        AssetKey("videos")
    )
    assert ("clip_a" in requested) == (not kept)


def test_unknown_id_is_refused_and_confirmation_is_asked(project, capsys, monkeypatch):
    from pipeline.remove_video import main

    instance, _, data_root = project
    assert main(["no_such_video", "--yes"]) == 2
    err = capsys.readouterr().err
    assert "unknown video 'no_such_video'" in err and "clip_a" in err  # names the id and lists known ones
    assert main(["../etc", "--yes"]) == 2
    assert "invalid video id" in capsys.readouterr().err

    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert main(["clip_a"]) == 1
    assert "nothing removed" in capsys.readouterr().out
    assert instance.get_dynamic_partitions("videos") == ["clip_a", "clip_b"]
    assert (data_root / "frames" / "clip_a.zarr").exists() and not catalog.removed_ids(data_root)

    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert main(["clip_a"]) == 0
    assert instance.get_dynamic_partitions("videos") == ["clip_b"]
    assert main(["clip_a", "--yes"]) == 2  # gone now: unknown
    assert main(["clip_b", "--restore"]) == 2  # never removed
