"""Bring your own game: a folder of another game's videos, with its own action space, goes through all six stages
with the tiny preset through the real Dagster code path (`pipeline.demo.run_all`, as `make demo` runs it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import DagsterInstance

from ahriuwu_core.training.checkpoint import read_checkpoint
from tests._instance import scratch_project
from tests._other_game import write_other_game


def run_folder(
    tmp: Path, videos: dict[str, dict], env: dict | None = None, run_config: dict | None = None, inspect=None
):
    """Write the named videos (kwargs of write_other_game) into a folder source and materialize everything
    (env: environment overrides; run_config: launchpad config for every run; inspect(instance): called before
    the instance is disposed)."""
    src = tmp / "source"
    for i, (name, kw) in enumerate(videos.items()):
        write_other_game(src / f"{name}.mp4", seed=i, **kw)
    mp = pytest.MonkeyPatch()
    _, data_root = scratch_project(tmp, src, mp)
    for key, value in (env or {}).items():
        mp.setenv(key, value)
    try:
        from pipeline.demo import run_all
        from pipeline.resources import resources_from_env

        instance = DagsterInstance.get()
        outcome = run_all(instance, resources_from_env(), log=lambda s: None, run_config=run_config)
        if inspect is not None:
            inspect(instance)
        failures = {}
        for run in instance.get_runs():
            if run.status.value == "FAILURE":
                failures[run.run_id] = " | ".join(
                    _messages(e.dagster_event.event_specific_data.error)
                    for e in instance.all_logs(run.run_id)
                    if e.dagster_event and e.dagster_event.is_step_failure
                )
        instance.dispose()
    finally:
        mp.undo()
    return outcome, failures, data_root


def _messages(error) -> str:
    """An error's message and its causes' (Dagster wraps the asset's own exception)."""
    out = []
    while error is not None:
        out.append(error.message)
        error = error.cause
    return " <- ".join(out)


def _metrics(data_root: Path) -> dict:
    [path] = sorted((data_root / "reports").glob("*/metrics.json"))
    return json.loads(path.read_text())


def test_a_17_key_game_goes_through_all_six_stages(tmp_path):
    outcome, failures, root = run_folder(tmp_path, {f"run{i}": {} for i in range(4)})
    assert all(outcome.values()), (outcome, failures)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["test"] and manifest["train"]  # a hash split for a non-demo source too
    assert manifest["action_space"] == {"components": ["key"], "num_classes": [17]}
    ckpt = read_checkpoint(root / "dynamics" / "dynamics.pt")
    assert tuple(ckpt["config"]["action_num_classes"]) == (17,)
    m = _metrics(root)
    assert m["splits"] == ["test", "validation"][: 1 + bool(manifest["validation"])]
    assert [m[s]["videos"] for s in m["splits"]] == [manifest[s] for s in m["splits"]]
    assert m["test"]["action_gap_available"] and len(m["test"]["action_gap_db"]) == len(m["test"]["horizons"])


def test_three_components_with_labelled_and_unlabelled_videos(tmp_path):
    spec = {
        "a": {"extra_classes": (5, 3)},
        "b": {"extra_classes": (5, 3)},
        "c": {"sidecar": False},
        "d": {"sidecar": False},
    }
    outcome, failures, root = run_folder(tmp_path, spec)
    assert all(outcome.values()), (outcome, failures)
    assert tuple(read_checkpoint(root / "dynamics" / "dynamics.pt")["config"]["action_num_classes"]) == (17, 5, 3)
    manifest = json.loads((root / "manifest.json").read_text())
    assert {v["video_id"]: v["has_actions"] for v in manifest["videos"]} == {
        "a": True,
        "b": True,
        "c": False,
        "d": False,
    }


def test_mismatched_action_spaces_fail_in_the_manifest_naming_both_videos(tmp_path):
    outcome, failures, _ = run_folder(tmp_path, {"keys": {}, "keys2": {}, "more": {"extra_classes": (4,)}})
    assert not outcome["dataset_manifest"]
    text = " ".join(failures.values())
    assert "keys" in text and "more" in text and "different action spaces" in text, text
    # nothing trained on the broken dataset
    assert not outcome.get("dynamics") and not outcome.get("evaluation")


def test_a_single_video_trains_and_evaluation_says_there_is_no_test_video(tmp_path):
    outcome, failures, root = run_folder(tmp_path, {"only": {}})
    assert outcome["tokenizer"] and outcome["dynamics"], (outcome, failures)
    assert outcome["evaluation"]
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["train"] == ["only"] and manifest["validation"] == manifest["test"] == []
    assert not (root / "reports").exists() or not list((root / "reports").glob("*/metrics.json"))


def test_a_launchpad_preset_reaches_every_stage_of_the_run(tmp_path):
    """The environment says `demo`, the launchpad's resources section says `tiny`: every stage trains, encodes
    and evaluates with tiny's configs (tiny's 16 tokenizer steps and 12 world-model steps, where demo's would take
    minutes) and records `tiny`."""
    from dagster import AssetKey

    recorded = {}

    def inspect(instance):
        for name in ("frames", "dataset_manifest", "tokenizer", "latents", "dynamics", "evaluation"):
            event = instance.get_latest_materialization_event(AssetKey(name))
            recorded[name] = {
                k: v.value
                for k, v in event.asset_materialization.metadata.items()
                if k in ("preset", "steps", "source", "num_videos")
            }

    outcome, failures, root = run_folder(
        tmp_path,
        {"a": {}, "b": {}},
        env={"AHRIUWU_PRESET": "demo"},
        run_config={"resources": {"project": {"config": {"preset": "tiny"}}}},
        inspect=inspect,
    )
    assert all(outcome.values()), (outcome, failures)
    assert {name: r["preset"] for name, r in recorded.items()} == dict.fromkeys(recorded, "tiny")
    assert recorded["tokenizer"]["steps"] == 16 and recorded["dynamics"]["steps"] == 12
    # The override changed the preset only: the source stays the environment's, and both videos are its.
    manifest = recorded["dataset_manifest"]
    assert manifest["source"].startswith("folder:") and manifest["num_videos"] == 2
