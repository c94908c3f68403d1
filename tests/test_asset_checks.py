"""Asset check results as Dagster records them: for each check, a passing and a failing case through the real
assets, read back from the instance (not from the functions that compute them)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from dagster import AssetSelection, DagsterInstance, materialize

from ahriuwu_core.testing import media
from tests._checks import recorded
from tests._instance import scratch_project


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("checks")
    src = tmp / "source"
    media.make_clip(src / "good.mp4", seconds=1, width=96, height=64)
    media.make_clip(src / "dark.mp4", seconds=1, width=96, height=64, pattern="dark")
    media.make_clip(src / "still.mp4", seconds=1, width=96, height=64, pattern="frozen")
    mp = pytest.MonkeyPatch()
    _, data_root = scratch_project(tmp, src, mp)
    from pipeline.assets import dataset_manifest, frames, videos
    from pipeline.definitions import ALL_ASSETS
    from pipeline.demo import register_source
    from pipeline.resources import resources_from_env

    instance = DagsterInstance.get()
    resources = resources_from_env()
    ids = register_source(instance, resources)
    for vid in ids:
        materialize(
            ALL_ASSETS,
            selection=AssetSelection.assets(videos, frames),
            instance=instance,
            resources=resources,
            partition_key=vid,
            raise_on_error=False,
        )
    materialize(
        ALL_ASSETS,
        selection=AssetSelection.assets(dataset_manifest),
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    yield instance, data_root, ids
    instance.dispose()
    mp.undo()


def test_frames_checks_pass_on_good_video_and_fail_on_black_or_frozen(project):
    instance, _, ids = project
    assert ids == ["dark", "good", "still"]
    assert recorded(instance, "frames", "not_black_or_frozen", "good")[0]
    passed, md = recorded(instance, "frames", "not_black_or_frozen", "dark")
    assert not passed and md["frozen_fraction"] < 0.95 and md["mean_intensity"] < 4 / 255  # black alone fails it
    passed, md = recorded(instance, "frames", "not_black_or_frozen", "still")
    assert not passed and md["frozen_fraction"] == 1.0  # frozen alone fails it
    for vid in ids:
        assert recorded(instance, "frames", "frame_count", vid)[0]


def test_frame_count_check_fails_on_a_short_decode(project, monkeypatch):
    """A decode that stops early (the container promises more) is recorded as a failed frame_count check."""
    instance, data_root, _ = project
    from ahriuwu_core.data import frames as frames_lib
    from pipeline.assets import frames
    from pipeline.definitions import ALL_ASSETS
    from pipeline.resources import resources_from_env

    real = frames_lib.extract_frames

    def short(*a, **k):
        stats = real(*a, **k)
        return {**stats, "container_duration_s": stats["container_duration_s"] + 1.0}

    monkeypatch.setattr(frames_lib, "extract_frames", short)
    materialize(
        ALL_ASSETS,
        selection=AssetSelection.assets(frames),
        instance=instance,
        resources=resources_from_env(),
        partition_key="good",
        raise_on_error=False,
    )
    passed, md = recorded(instance, "frames", "frame_count", "good")
    assert not passed and md["container_duration_s"] - md["num_frames"] / 20 >= 1.0


def test_split_check_records_the_hash_split_of_a_folder_source(project):
    """A folder source is split by a stable hash (at least one test video of 2+); the recorded check passes and
    names the counts. (A leaking split cannot be built through the assets: the manifest refuses to publish
    one, and `check_split_disjoint`'s failing cases are tested directly.)"""
    instance, data_root, ids = project
    manifest = json.loads((data_root / "manifest.json").read_text())
    passed, md = recorded(instance, "dataset_manifest", "split_disjoint")
    assert passed and md["num_evaluated"] == len(manifest["validation"] + manifest["test"]) and manifest["test"]
    assert md["num_train"] + md["num_evaluated"] == len(ids)


def test_a_stage_whose_upstream_training_asset_never_published_names_it(project):
    """latents before any tokenizer: the error names the `tokenizer` asset, not a missing file."""
    instance, _, _ = project
    from pipeline.assets import latents
    from pipeline.definitions import ALL_ASSETS
    from pipeline.resources import resources_from_env

    result = materialize(
        ALL_ASSETS,
        selection=AssetSelection.assets(latents),
        instance=instance,
        resources=resources_from_env(),
        partition_key="good",
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    error = failure.event_specific_data.error
    text = ""
    while error is not None:
        text, error = text + error.message, error.cause
    assert "upstream asset `tokenizer` has no published checkpoint" in text and "never been materialized" in text


def test_not_collapsed_is_recorded_failed_for_a_tokenizer_that_decodes_everything_alike(tmp_path, monkeypatch):
    """A tokenizer whose decoder returns one picture for every input (here: forced mid-gray) through the real
    tokenizer asset: the recorded blocking check fails. The same asset without the fault passes it."""
    src = tmp_path / "source"
    for i in range(3):
        media.make_clip(src / f"clip{i}.mp4", seconds=1, width=96, height=64, seed=i)
    _, data_root = scratch_project(tmp_path, src, monkeypatch)
    from ahriuwu_core.tokenizer.cnn import CNNTokenizer
    from pipeline.assets import dataset_manifest, frames, tokenizer, videos
    from pipeline.definitions import ALL_ASSETS
    from pipeline.demo import register_source
    from pipeline.resources import resources_from_env

    instance = DagsterInstance.get()
    resources = resources_from_env()
    for vid in register_source(instance, resources):
        materialize(
            ALL_ASSETS,
            selection=AssetSelection.assets(videos, frames),
            instance=instance,
            resources=resources,
            partition_key=vid,
        )
    materialize(ALL_ASSETS, selection=AssetSelection.assets(dataset_manifest), instance=instance, resources=resources)
    materialize(
        ALL_ASSETS,
        selection=AssetSelection.assets(tokenizer),
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    assert recorded(instance, "tokenizer", "not_collapsed")[0]
    monkeypatch.setattr(
        CNNTokenizer,
        "decode",
        lambda self, latents: torch.full((*latents.shape[:2], 3, self.cfg.image_size, self.cfg.image_size), 0.5),
    )
    shutil.rmtree(data_root / "tokenizer")  # train afresh (the run folder would resume the finished run)
    materialize(
        ALL_ASSETS,
        selection=AssetSelection.assets(tokenizer),
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    passed, md = recorded(instance, "tokenizer", "not_collapsed")
    assert not passed and md["collapse_recon_ratio"] == 0.0
    instance.dispose()
