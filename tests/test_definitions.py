"""The code location as Dagster's own tooling sees it: `dg check defs` loads it, every asset says what it is and
who owns it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests._instance import ROOT, scratch_project


def test_dg_check_defs_passes(tmp_path, monkeypatch):
    """`dg check defs` finds the project through pyproject's [tool.dg] and loads pipeline.definitions."""
    scratch_project(tmp_path, tmp_path / "src", monkeypatch)
    dg = Path(sys.executable).with_name("dg")
    done = subprocess.run(
        [str(dg), "check", "defs"], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All definitions loaded successfully" in done.stdout + done.stderr


def test_every_asset_has_kinds_tags_and_an_owner():
    from pipeline.definitions import defs

    specs = defs.resolve_all_asset_specs()
    assert {s.key.to_user_string() for s in specs} == {
        "videos",
        "frames",
        "dataset_manifest",
        "tokenizer",
        "latents",
        "dynamics",
        "evaluation",
    }
    for spec in specs:
        name = spec.key.to_user_string()
        assert spec.kinds, name
        assert spec.owners and all(o.startswith("team:") or "@" in o for o in spec.owners), name
        assert spec.tags.get("scope") == ("per_video" if spec.partitions_def is not None else "dataset"), name
    assert "pytorch" in next(s for s in specs if s.key.to_user_string() == "dynamics").kinds


def test_compute_tag_says_which_assets_take_the_gpu_pool():
    from pipeline.definitions import ALL_ASSETS

    for asset in ALL_ASSETS:
        for spec in asset.specs:
            assert spec.tags["compute"] == ("gpu" if "gpu" in asset.op.pools else "cpu"), spec.key


def test_instance_retries_only_crashed_runs(tmp_path, monkeypatch):
    """The project's dagster.yaml loads, and its retry policy leaves runs failed by an asset alone."""
    import yaml
    from dagster import DagsterInstance

    home, _ = scratch_project(tmp_path, tmp_path / "src", monkeypatch)
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    assert config["run_retries"] == {"enabled": True, "max_retries": 1, "retry_on_asset_or_op_failure": False}
    assert config["run_monitoring"]["enabled"]  # what detects a crashed run worker in the first place
    with DagsterInstance.get() as instance:  # DAGSTER_HOME is `home`: Dagster validates the file against its schema
        assert instance.get_settings("run_retries") == config["run_retries"]


def test_the_project_resource_is_the_only_configuration():
    """No asset has a config field that could disagree with the run's resolved preset (only `videos`' operation
    flag `refetch`, and which published models `evaluation` scores), and every stage reads the preset through the
    project resource."""
    from pipeline.definitions import ALL_ASSETS

    fields = {}
    for asset in ALL_ASSETS:
        config_type = asset.op.config_schema.as_field().config_type  # `Any` for an asset without config
        fields[asset.key.to_user_string()] = sorted(getattr(config_type, "fields", None) or {})
    assert fields == {
        "videos": ["refetch"],
        "frames": [],
        "dataset_manifest": [],
        "tokenizer": [],
        "latents": [],
        "dynamics": [],
        "evaluation": ["dynamics_model", "tokenizer_model"],
    }
    for asset in ALL_ASSETS:
        if asset.key.to_user_string() != "videos":
            assert "project" in asset.required_resource_keys, asset.key


def test_the_resolved_preset_follows_the_source_and_the_tokenizer_kind():
    from ahriuwu_core.presets import get_preset
    from pipeline.resources import ProjectResource

    demo = ProjectResource(preset="demo", source="demo").preset_config()
    assert demo.frames.hud_layout == "demo" and demo.split == get_preset("demo").split
    other = ProjectResource(preset="demo", source="folder:/videos", tokenizer_kind="transformer").preset_config()
    assert other.frames.hud_layout == "none" and other.split == demo.split  # every source: the same hash split
    assert other.tokenizer_config().kind == "transformer" and list(other.tokenizers) == ["transformer"]
    assert ProjectResource(preset="seed", source="folder:/v").preset_config().frames.hud_layout == "replay"


def test_a_launchpad_override_of_one_field_keeps_the_others_from_the_environment(monkeypatch):
    """Dagster builds an overridden resource from the class defaults plus the launchpad's fields; the project's
    unset fields read the environment, so overriding the preset keeps the deployment's source."""
    from dagster import asset, materialize

    from pipeline.resources import ProjectResource

    monkeypatch.setenv("AHRIUWU_PRESET", "demo")
    monkeypatch.setenv("AHRIUWU_SOURCE", "folder:/videos")

    @asset(required_resource_keys={"project"})  # this module's annotations are strings (__future__)
    def probe(context):
        project = context.resources.project
        return project.setting("preset"), project.setting("source"), project.preset_config().name

    result = materialize(
        [probe],
        resources={"project": ProjectResource()},
        run_config={"resources": {"project": {"config": {"preset": "tiny"}}}},
    )
    assert result.output_for_node("probe") == ("tiny", "folder:/videos", "tiny")
    assert materialize([probe], resources={"project": ProjectResource()}).output_for_node("probe")[:2] == (
        "demo",
        "folder:/videos",
    )


def test_a_relative_data_root_outside_a_checkout_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    """After a non-editable install the code lives in site-packages: the default data root must not land there."""
    import pipeline.resources as R

    assert R.StorageResource(root="assets").path == R.PROJECT_ROOT / "assets"  # a checkout: beside pyproject.toml
    monkeypatch.setattr(R, "PROJECT_ROOT", tmp_path / "site-packages")
    monkeypatch.chdir(tmp_path)
    assert R.StorageResource(root="assets").path == tmp_path / "assets"
    assert R.StorageResource(root="/data/root").path == Path("/data/root")


def test_metadata_floats_are_readable():
    from pipeline.assets.common import readable, scalars

    assert readable(44.123456789) == 44.12 and readable(0.00123456) == 0.001235 and readable(12345.678) == 12346
    assert readable(-3.14159) == -3.142 and readable(0.0) == 0.0
    assert scalars({"psnr": 31.987654321, "steps": 360, "name": "x"}) == {"psnr": 31.99, "steps": 360, "name": "x"}
