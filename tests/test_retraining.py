"""Retraining and freshness: the weekly schedule (shipped stopped) requests the tokenizer; the real automation
conditions then request every video's latents, the world model once all are re-encoded, and its evaluation; the
`trained_on_current_data` checks warn once a new video changes the manifest. Training is stood in for by stubs
with the same keys and blocking checks (the real stages run in test_pipeline.py); ingest is real."""

from __future__ import annotations

import json

import pytest
from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSpec,
    AssetKey,
    DagsterInstance,
    DefaultScheduleStatus,
    MaterializeResult,
    RunRequest,
    asset,
    build_schedule_context,
)

from ahriuwu_core.data import manifest as manifest_lib
from ahriuwu_core.testing import media
from tests._daemon import Daemon, shape
from tests._instance import scratch_project

pytestmark = pytest.mark.filterwarnings("ignore::dagster.BetaWarning")


def _manifest_version(context) -> str:
    from pipeline.resources import resources_from_env

    return manifest_lib.read_manifest(resources_from_env()["storage"].path)["version"]


@asset(
    key="tokenizer",
    deps=["dataset_manifest"],
    check_specs=[AssetCheckSpec("not_collapsed", asset="tokenizer", blocking=True)],
)
def stub_tokenizer() -> MaterializeResult:
    return MaterializeResult(check_results=[AssetCheckResult(check_name="not_collapsed", passed=True)])


def _stub_latents(failing=()):
    from pipeline.assets import video_partitions

    @asset(key="latents", deps=["frames", "tokenizer"], partitions_def=video_partitions)
    def stub_latents(context) -> MaterializeResult:
        if context.partition_key in failing:
            raise RuntimeError(f"{context.partition_key}: a damaged frames store")
        return MaterializeResult()

    return stub_latents


@asset(
    key="dynamics",
    deps=["latents", "dataset_manifest", "tokenizer"],
    check_specs=[
        AssetCheckSpec(n, asset="dynamics", blocking=True) for n in ("finite_loss", "loss_improved", "action_alive")
    ],
)
def stub_dynamics(context) -> MaterializeResult:
    return MaterializeResult(
        metadata={"manifest_version": _manifest_version(context)},
        check_results=[
            AssetCheckResult(check_name=n, passed=True) for n in ("finite_loss", "loss_improved", "action_alive")
        ],
    )


@asset(key="evaluation", deps=["dynamics", "tokenizer", "dataset_manifest"])
def stub_evaluation(context) -> MaterializeResult:
    return MaterializeResult(metadata={"manifest_version": _manifest_version(context)})


@pytest.fixture
def project(tmp_path, monkeypatch):
    src = tmp_path / "source"
    for seed, name in enumerate(("clip_a", "clip_b")):
        media.make_clip(src / f"{name}.mp4", seconds=1, width=96, height=64, seed=seed)
    scratch_project(tmp_path, src, monkeypatch)
    from pipeline.resources import resources_from_env

    instance = DagsterInstance.get()
    yield Daemon(instance, resources_from_env()), src
    instance.dispose()


def _schedule_tick(instance):
    """One tick of the real weekly_retrain schedule: its run request, as the assets it selects."""
    from dagster import RunRequest

    from pipeline.definitions import defs

    schedule = defs.resolve_schedule_def("weekly_retrain")
    [request] = schedule.evaluate_tick(build_schedule_context(instance=instance)).run_requests
    job = defs.resolve_job_def(request.job_name or schedule.job_name)
    return RunRequest(asset_selection=sorted(job.asset_layer.selected_asset_keys))


def test_the_weekly_retrain_schedule_ships_stopped_and_requests_the_tokenizer(project):
    from pipeline.definitions import defs

    daemon, _ = project
    schedule = defs.resolve_schedule_def("weekly_retrain")
    assert schedule.default_status == DefaultScheduleStatus.STOPPED
    assert schedule.cron_schedule == "0 3 * * 1"
    assert shape([_schedule_tick(daemon.instance)]) == [(None, ["tokenizer"])]
    job = defs.resolve_job_def(schedule.job_name)
    assert AssetCheckKey(AssetKey("tokenizer"), "not_collapsed") in job.asset_layer.asset_graph.asset_check_keys


def test_a_new_tokenizer_is_followed_by_latents_then_dynamics_then_evaluation(project):
    from pipeline.definitions import ALL_ASSETS

    daemon, src = project
    stubs = [a for a in ALL_ASSETS if a.key.to_user_string() in ("videos", "frames", "dataset_manifest")]
    stubs += [stub_tokenizer, _stub_latents(), stub_dynamics, stub_evaluation]
    run = lambda requests: daemon.launch(requests, assets=stubs)  # noqa: E731

    daemon.automation_tick()
    assert all(run(daemon.sensor_tick() + daemon.automation_tick()))  # videos + frames of both
    runs = daemon.automation_tick()
    assert shape(runs) == [(None, ["dataset_manifest"])]
    assert all(run(runs))
    for _ in range(2):
        assert daemon.automation_tick() == []  # no tokenizer yet: nothing trains by itself

    assert all(run([_schedule_tick(daemon.instance)]))  # the schedule's run: the tokenizer
    runs = daemon.automation_tick()
    # Every video, re-encoded: one backfill (the sensor's production setting), one run per video.
    assert shape(runs) == [("backfill", [("clip_a", ["latents"]), ("clip_b", ["latents"])])]
    runs = daemon.runs_of(runs)
    assert all(run(runs[:1]))
    assert daemon.automation_tick() == []  # the world model waits for the other video's latents
    assert all(run(runs[1:]))
    runs = daemon.automation_tick()
    assert shape(runs) == [(None, ["dynamics"])]
    assert all(run(runs))
    runs = daemon.automation_tick()
    assert shape(runs) == [(None, ["evaluation"])]
    assert all(run(runs))
    for _ in range(2):
        assert daemon.automation_tick() == []
    assert {k: n for k, n in daemon.requested.items() if k[0] in ("latents", "dynamics", "evaluation")} == {
        ("latents", "clip_a"): 1,
        ("latents", "clip_b"): 1,
        ("dynamics", None): 1,
        ("evaluation", None): 1,
    }

    # A new video: ingested and encoded with the current tokenizer, but nothing retrains; the models are flagged.
    media.make_clip(src / "clip_c.mp4", seconds=1, width=96, height=64, seed=2)
    runs = daemon.sensor_tick() + daemon.automation_tick()
    assert shape(runs) == [("clip_c", ["frames", "latents", "videos"])]  # a tokenizer exists: one run
    assert all(run(runs))
    runs = daemon.automation_tick()
    assert shape(runs) == [(None, ["dataset_manifest"])]
    assert all(run(runs))
    runs = daemon.automation_tick()
    assert shape(runs) == [(None, ["dynamics:trained_on_current_data", "evaluation:trained_on_current_data"])]
    result = _run_checks(daemon, runs[0].asset_check_keys)
    evaluations = {e.asset_check_key.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {"dynamics", "evaluation"}
    assert not any(e.passed for e in evaluations.values())
    assert "the dataset changed" in evaluations["dynamics"].metadata["reason"].value
    assert daemon.automation_tick() == [] and daemon.requested[("dynamics", None)] == 1


def test_a_video_whose_re_encode_fails_does_not_stall_retraining(project):
    """One video's latents fail after a new tokenizer: the world model is requested once the other is re-encoded
    (it leaves the failed one out and names it), and the failed one is not requested again until it changes."""
    from pipeline.definitions import ALL_ASSETS

    daemon, _ = project
    stubs = [a for a in ALL_ASSETS if a.key.to_user_string() in ("videos", "frames", "dataset_manifest")]
    stubs += [stub_tokenizer, _stub_latents(failing={"clip_a"}), stub_dynamics, stub_evaluation]
    run = lambda requests: daemon.launch(requests, assets=stubs)  # noqa: E731

    daemon.automation_tick()
    assert all(run(daemon.sensor_tick() + daemon.automation_tick()))
    assert all(run(daemon.automation_tick()))  # the manifest
    assert all(run([_schedule_tick(daemon.instance)]))
    runs = daemon.automation_tick()
    assert shape(runs) == [("backfill", [("clip_a", ["latents"]), ("clip_b", ["latents"])])]
    assert run(runs) == [False, True]
    runs = daemon.automation_tick()
    assert shape(runs) == [(None, ["dynamics"])]
    assert all(run(runs))
    assert shape(daemon.automation_tick()) == [(None, ["evaluation"])]
    assert daemon.requested[("latents", "clip_a")] == 1


def test_a_retrain_that_republishes_the_same_model_requests_nothing_downstream(project):
    """Automation follows data versions, not updates: a tokenizer or world model materialized again with the same
    data version (the same published sha: identical bytes) requests no GPU stage; a changed one does."""
    from dagster import DataVersion

    from pipeline.definitions import ALL_ASSETS

    versions = {"tokenizer": "tok-1", "dynamics": "dyn-1"}

    @asset(
        key="tokenizer",
        deps=["dataset_manifest"],
        check_specs=[AssetCheckSpec("not_collapsed", asset="tokenizer", blocking=True)],
    )
    def tokenizer_with_version() -> MaterializeResult:
        return MaterializeResult(
            data_version=DataVersion(versions["tokenizer"]),
            check_results=[AssetCheckResult(check_name="not_collapsed", passed=True)],
        )

    checks = ("finite_loss", "loss_improved", "action_alive")

    @asset(
        key="dynamics",
        deps=["latents", "dataset_manifest", "tokenizer"],
        check_specs=[AssetCheckSpec(n, asset="dynamics", blocking=True) for n in checks],
    )
    def dynamics_with_version(context) -> MaterializeResult:
        return MaterializeResult(
            data_version=DataVersion(versions["dynamics"]),
            metadata={"manifest_version": _manifest_version(context)},
            check_results=[AssetCheckResult(check_name=n, passed=True) for n in checks],
        )

    daemon, _ = project
    stubs = [a for a in ALL_ASSETS if a.key.to_user_string() in ("videos", "frames", "dataset_manifest")]
    stubs += [tokenizer_with_version, _stub_latents(), dynamics_with_version, stub_evaluation]
    run = lambda requests: daemon.launch(requests, assets=stubs)  # noqa: E731

    daemon.automation_tick()
    assert all(run(daemon.sensor_tick() + daemon.automation_tick()))
    assert all(run(daemon.automation_tick()))  # the manifest
    assert all(run([_schedule_tick(daemon.instance)]))
    for expected in (
        [("backfill", [("clip_a", ["latents"]), ("clip_b", ["latents"])])],
        [(None, ["dynamics"])],
        [(None, ["evaluation"])],
    ):
        runs = daemon.automation_tick()
        assert shape(runs) == expected
        assert all(run(runs))
    assert daemon.automation_tick() == []

    # The retrain republishes the same models: updated, same data versions, nothing downstream is requested.
    assert all(run([_schedule_tick(daemon.instance)]))
    assert all(run([RunRequest(asset_selection=[AssetKey("dynamics")])]))
    for _ in range(2):
        assert daemon.automation_tick() == []
    # A tokenizer that changed: its latents, and after them the world model, follow.
    versions["tokenizer"] = "tok-2"
    assert all(run([_schedule_tick(daemon.instance)]))
    runs = daemon.automation_tick()
    assert shape(runs) == [("backfill", [("clip_a", ["latents"]), ("clip_b", ["latents"])])]
    assert all(run(runs))
    runs = daemon.automation_tick()
    assert shape(runs) == [(None, ["dynamics"])]
    assert all(run(runs))  # the world model came out the same (dyn-1): its evaluation is not rerun
    assert daemon.automation_tick() == []
    assert daemon.requested[("evaluation", None)] == 1 and daemon.requested[("dynamics", None)] == 2


def _run_checks(daemon, check_keys):
    """The project's checks `check_keys` alone, as a run of checks requested by automation executes them."""
    from dagster import AssetSelection, materialize

    from pipeline.definitions import ALL_ASSETS
    from pipeline.retraining import FRESHNESS_CHECKS

    result = materialize(
        [*ALL_ASSETS, *FRESHNESS_CHECKS],
        selection=AssetSelection.checks(*check_keys),
        instance=daemon.instance,
        resources=daemon.resources,
    )
    assert result.success
    return result


def test_the_freshness_check_on_the_real_wiring(project):
    """The project's own `trained_on_current_data` check reads the model's recorded manifest version and the
    manifest now: it passes while they agree and warns once a new video changes the manifest."""
    from dagster import AssetCheckSeverity, materialize

    daemon, src = project
    daemon.automation_tick()
    daemon.launch(daemon.sensor_tick() + daemon.automation_tick())
    daemon.launch(daemon.automation_tick())  # the manifest
    assert materialize([stub_dynamics], instance=daemon.instance, resources=daemon.resources).success
    check_keys = [AssetCheckKey(AssetKey("dynamics"), "trained_on_current_data")]

    def judge():
        [evaluation] = _run_checks(daemon, check_keys).get_asset_check_evaluations()
        assert evaluation.severity == AssetCheckSeverity.WARN  # a warning: it blocks nothing
        return evaluation.passed, {k: v.value for k, v in evaluation.metadata.items()}

    passed, details = judge()
    assert passed and details["trained_on_manifest"] == details["current_manifest"]
    media.make_clip(src / "clip_c.mp4", seconds=1, width=96, height=64, seed=2)
    daemon.launch(daemon.sensor_tick() + daemon.automation_tick())
    daemon.launch([r for r in daemon.automation_tick() if r.asset_selection])  # the new manifest
    passed, details = judge()
    assert not passed and details["trained_on_manifest"] != details["current_manifest"]
    assert json.dumps(details)  # plain values the UI shows


def test_the_check_function():
    assert manifest_lib.check_trained_on_current("v1", "v1")[0]
    passed, details = manifest_lib.check_trained_on_current("v1", "v2")
    assert not passed and details["reason"].startswith("the dataset changed")
    assert "no manifest version recorded" in manifest_lib.check_trained_on_current(None, "v2")[1]["reason"]
    assert "no dataset manifest" in manifest_lib.check_trained_on_current("v1", None)[1]["reason"]
