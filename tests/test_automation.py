"""Automation end to end on a scratch instance: the real `new_videos` sensor adds partitions, the real assets'
automation conditions (`dagster.evaluate_automation_conditions`, tick by tick with the cursor) request runs, and
the test executes the requested runs in process the way the daemon would launch them (tiny clips, tiny preset)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetKey,
    DagsterInstance,
    MaterializeResult,
    RunConfig,
    asset,
    materialize,
)

from ahriuwu_core.testing import media
from tests._daemon import Daemon, shape
from tests._instance import ROOT, scratch_project

# Raised inside dagster's own evaluate_automation_conditions (its asset selection), not by the project.
pytestmark = pytest.mark.filterwarnings("ignore::dagster.BetaWarning")


@pytest.fixture
def project(tmp_path, monkeypatch):
    src = tmp_path / "source"
    media.make_clip(src / "clip_a.mp4", seconds=1, width=96, height=64)
    scratch_project(tmp_path, src, monkeypatch)
    from pipeline.resources import resources_from_env

    instance = DagsterInstance.get()
    yield Daemon(instance, resources_from_env()), src
    instance.dispose()


@pytest.mark.parametrize("first", ["automation", "sensor"])
def test_a_new_video_is_requested_once_per_stage_by_sensor_and_automation_together(project, first):
    """Both orders of the daemon's two sensors on their first ticks: the partition appears after automation's
    first evaluation, or before it (then the fetch still goes, and frames follows the fetch)."""
    daemon, _ = project
    if first == "automation":
        assert daemon.automation_tick() == []  # no partition yet
    assert daemon.sensor_tick() == []  # the sensor only adds the partition
    assert daemon.instance.get_dynamic_partitions("videos") == ["clip_a"]
    runs = daemon.automation_tick()
    if first == "automation":
        assert shape(runs) == [("clip_a", ["frames", "videos"])]  # fetch and frames in one run
    else:
        assert shape(runs) == [("clip_a", ["videos"])]
        assert daemon.launch(runs) == [True]
        runs = daemon.automation_tick()
        assert shape(runs) == [("clip_a", ["frames"])]
    assert daemon.launch(runs) == [True]
    runs = daemon.automation_tick()
    assert shape(runs) == [(None, ["dataset_manifest"])]  # after the frames update
    assert daemon.launch(runs) == [True]
    for _ in range(3):  # nothing more: latents waits for a tokenizer, which training provides on demand
        assert daemon.sensor_tick() == [] and daemon.automation_tick() == []
    assert daemon.requested == Counter(
        {("videos", "clip_a"): 1, ("frames", "clip_a"): 1, ("dataset_manifest", None): 1}
    )


@pytest.mark.parametrize("started", ["after_the_request", "before_any_request", "not_yet"])
def test_no_second_request_while_its_run_is_in_progress(project, started):
    """The requested run is running; or a run launched by hand (the UI) runs before automation ticks; or the
    requested run has not even been launched when the next ticks come."""
    daemon, _ = project
    daemon.automation_tick()
    daemon.sensor_tick()
    if started != "before_any_request":
        assert shape(daemon.automation_tick()) == [("clip_a", ["frames", "videos"])]
    if started != "not_yet":
        daemon.start_run(["videos", "frames"], "clip_a")
    for _ in range(3):
        assert daemon.sensor_tick() == [] and daemon.automation_tick() == []
    expected = 0 if started == "before_any_request" else 1
    assert daemon.requested == Counter({("videos", "clip_a"): expected, ("frames", "clip_a"): expected})


def test_a_failed_stage_is_not_requested_again_until_its_input_changes(project, monkeypatch):
    import ahriuwu_core.data.frames
    from pipeline.assets import VideosConfig
    from pipeline.definitions import ALL_ASSETS

    daemon, src = project
    daemon.automation_tick()

    def broken(*a, **k):
        raise RuntimeError("decoder crashed")

    real = ahriuwu_core.data.frames.extract_frames
    monkeypatch.setattr(ahriuwu_core.data.frames, "extract_frames", broken)
    runs = daemon.sensor_tick() + daemon.automation_tick()
    assert not any(daemon.launch(runs))  # videos materialized, frames failed
    for _ in range(3):
        assert daemon.sensor_tick() == [] and daemon.automation_tick() == []
    assert daemon.requested == Counter({("videos", "clip_a"): 1, ("frames", "clip_a"): 1})
    monkeypatch.setattr(ahriuwu_core.data.frames, "extract_frames", real)

    def refetch():
        assert materialize(
            ALL_ASSETS,
            selection=[AssetKey("videos")],
            partition_key="clip_a",
            instance=daemon.instance,
            resources=daemon.resources,
            run_config=RunConfig({"videos": VideosConfig(refetch=True)}),
        ).success

    # Fetched again by hand, the same bytes: its data version is unchanged, so that is no change.
    refetch()
    assert daemon.automation_tick() == []
    # The input changes (the source now holds another clip under that name): frames follows, once.
    media.make_clip(src / "clip_a.mp4", seconds=2, width=96, height=64)
    refetch()
    runs = daemon.automation_tick()
    assert shape(runs) == [("clip_a", ["frames"])]
    assert daemon.launch(runs) == [True]
    assert shape(daemon.automation_tick()) == [(None, ["dataset_manifest"])]  # now the manifest follows
    assert daemon.requested[("frames", "clip_a")] == 2 and daemon.requested[("videos", "clip_a")] == 1

    # A fetch that fails is not retried either.
    media.make_clip(src / "clip_b.mp4", seconds=1, width=96, height=64)
    runs = daemon.sensor_tick() + daemon.automation_tick()
    assert shape([r for r in runs if r.partition_key == "clip_b"]) == [("clip_b", ["frames", "videos"])]
    (src / "clip_b.mp4").unlink()  # gone from the source before the fetch runs
    assert daemon.launch([r for r in runs if r.partition_key == "clip_b"]) == [False]
    for _ in range(3):
        assert all(r.partition_key != "clip_b" for r in daemon.sensor_tick() + daemon.automation_tick())
    assert daemon.requested[("videos", "clip_b")] == 1 and daemon.requested[("frames", "clip_b")] == 1


@asset(key="tokenizer", check_specs=[AssetCheckSpec("not_collapsed", asset="tokenizer", blocking=True)])
def stub_tokenizer(context) -> MaterializeResult:
    """Stands in for training: records a tokenizer materialization whose blocking check passes or fails."""
    passed = os.environ["STUB_TOKENIZER_PASSES"] == "1"
    return MaterializeResult(check_results=[AssetCheckResult(check_name="not_collapsed", passed=passed)])


def test_latents_wait_for_the_tokenizers_blocking_check(project, monkeypatch):
    daemon, _ = project
    daemon.automation_tick()
    daemon.launch(daemon.sensor_tick() + daemon.automation_tick())  # videos + frames
    daemon.launch(daemon.automation_tick())  # manifest

    monkeypatch.setenv("STUB_TOKENIZER_PASSES", "0")  # recorded as materialized, with its blocking check failed
    assert not materialize([stub_tokenizer], instance=daemon.instance, raise_on_error=False).success
    for _ in range(2):
        assert daemon.automation_tick() == []  # a collapsed tokenizer: no encoding
    monkeypatch.setenv("STUB_TOKENIZER_PASSES", "1")
    assert materialize([stub_tokenizer], instance=daemon.instance).success
    assert shape(daemon.automation_tick()) == [("clip_a", ["latents"])]
    assert daemon.automation_tick() == []
    assert daemon.requested[("latents", "clip_a")] == 1


def test_automation_off_stops_every_sensor():
    code = (
        "import json, os; from pipeline.definitions import defs; "
        "print(json.dumps({s.name: s.default_status.value for s in defs.sensors}))"
    )
    statuses = {}
    for value in ("off", "on"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "AHRIUWU_AUTOMATION": value, "OMP_NUM_THREADS": "1"},
        )
        assert out.returncode == 0, out.stderr[-2000:]
        statuses[value] = json.loads(out.stdout.strip().splitlines()[-1])
    names = ("new_videos", "per_video_automation", "training_automation")
    assert statuses["off"] == dict.fromkeys(names, "STOPPED")
    assert statuses["on"] == dict.fromkeys(names, "RUNNING")
