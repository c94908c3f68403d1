"""Blocking checks protect what readers load: a training output is published only after its blocking checks
pass, and `make demo`'s run_all runs nothing downstream of a failed one. Through the real assets on the tiny
demo graph, results read back from the instance. Tests run in file order on one instance."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from ahriuwu_core.dynamics.checks import check_finite_loss, check_loss_improved
from tests._checks import recorded
from tests._instance import scratch_project

DYNAMICS_CHECKS = ("finite_loss", "loss_improved", "action_alive")


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("protect")
    mp = pytest.MonkeyPatch()
    _, data_root = scratch_project(tmp, tmp / "unused", mp)
    mp.setenv("AHRIUWU_SOURCE", "demo")  # labelled videos: the action check needs actions
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    from pipeline.demo import run_all
    from pipeline.resources import resources_from_env

    instance = DagsterInstance.get()
    outcome = run_all(instance, resources_from_env())
    yield instance, data_root, outcome, mp
    instance.dispose()
    torch.set_num_threads(threads)
    mp.undo()


def _metadata(instance, key: str) -> dict:
    [record] = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(key)), limit=1).records
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def test_dynamics_checks_pass_on_a_normal_tiny_run_and_it_is_published(graph):
    instance, data_root, outcome, _ = graph
    assert outcome and all(outcome.values()), outcome
    for name in DYNAMICS_CHECKS:
        passed, md = recorded(instance, "dynamics", name)
        assert passed and md["published"], (name, md)
    # The tiny run logs 2 losses: too few to tell a drop from batch noise, so not judged (and says so).
    assert recorded(instance, "dynamics", "loss_improved")[1]["judged"] is False
    assert recorded(instance, "dynamics", "action_alive")[1]["relative_change"] > 1e-4
    md = _metadata(instance, "dynamics")
    published = data_root / "dynamics" / "dynamics.pt"
    assert md["published_checkpoint"] == str(published)
    assert published.read_bytes() == Path(md["checkpoint"]).read_bytes()


def test_a_world_model_that_learns_nothing_fails_its_checks_and_stays_unpublished(graph):
    """lr=0, no least-squares start for the prior, and a loss logged every step: the loss cannot drop beyond
    noise, and the persistence prior's zero-initialized filters and output never move, so the prediction ignores
    actions. Both blocking checks fail, the published world model stays byte-identical, the failed one stays in
    its run folder, evaluation is skipped."""
    instance, data_root, _, mp = graph
    from ahriuwu_core import presets
    from pipeline.demo import run_all
    from pipeline.resources import resources_from_env

    tiny = presets.get_preset("tiny")
    still = dataclasses.replace(
        tiny,
        name="tiny_still",
        dynamics=dataclasses.replace(
            tiny.dynamics, log_every=1, prior_fit_windows=0, optim=dataclasses.replace(tiny.dynamics.optim, lr=0.0)
        ),
    )
    mp.setitem(presets.PRESETS, "tiny_still", still)
    mp.setenv("AHRIUWU_PRESET", "tiny_still")
    published = data_root / "dynamics" / "dynamics.pt"
    before = published.read_bytes()
    try:
        outcome = run_all(instance, resources_from_env())
    finally:
        mp.setenv("AHRIUWU_PRESET", "tiny")
    assert outcome["tokenizer"] and not outcome["dynamics"] and not outcome["evaluation"], outcome
    assert recorded(instance, "dynamics", "finite_loss")[0]
    passed, md = recorded(instance, "dynamics", "loss_improved")
    assert not passed and md["judged"] and md["logged_losses"] == still.dynamics.steps
    passed, md = recorded(instance, "dynamics", "action_alive")
    assert not passed and md["relative_change"] == 0.0 and md["published"] is False
    assert md["kept_published_checkpoint"] == str(published)
    failed = Path(md["checkpoint"])
    assert failed.parent.parent == data_root / "dynamics" / "runs" and failed.exists()
    assert published.read_bytes() == before and failed.read_bytes() != before
    assert _metadata(instance, "dynamics")["checkpoint"] == str(failed)


def test_a_collapsed_tokenizer_leaves_the_published_one_and_stops_its_dependents(graph, monkeypatch):
    """The decoder forced to one picture for every input: not_collapsed fails, tokenizer.pt stays byte-identical,
    the failed checkpoint stays in its run folder, and run_all runs no latents, dynamics or evaluation."""
    instance, data_root, _, _ = graph
    from ahriuwu_core.tokenizer.cnn import CNNTokenizer
    from pipeline.demo import run_all
    from pipeline.resources import resources_from_env

    published = data_root / "tokenizer" / "tokenizer.pt"
    before = published.read_bytes()
    monkeypatch.setattr(
        CNNTokenizer,
        "decode",
        lambda self, latents: torch.full((*latents.shape[:2], 3, self.cfg.image_size, self.cfg.image_size), 0.5),
    )
    for run in (data_root / "tokenizer" / "runs").iterdir():  # train afresh (a finished run would resume)
        for f in run.iterdir():
            f.unlink()
    lines = []
    outcome = run_all(instance, resources_from_env(), log=lines.append)
    assert not outcome["tokenizer"] and not outcome["dynamics"] and not outcome["evaluation"], outcome
    assert not [k for k in outcome if k.startswith("latents")], outcome
    assert any("blocking check tokenizer:not_collapsed" in line for line in lines), lines
    passed, md = recorded(instance, "tokenizer", "not_collapsed")
    assert not passed and md["published"] is False and md["kept_published_checkpoint"] == str(published)
    failed = Path(md["checkpoint"])
    assert failed.parent.parent == data_root / "tokenizer" / "runs" and failed.exists()
    assert published.read_bytes() == before and failed.read_bytes() != before
    assert _metadata(instance, "tokenizer")["published"] is False


def test_finite_loss_fails_on_a_nan_logged_loss_or_a_missing_final_loss():
    assert check_finite_loss([0.3, 0.2], 0.2)[0]
    passed, md = check_finite_loss([0.3, math.nan, 0.2], 0.2)
    assert not passed and md["nonfinite_logged"] == 1
    assert not check_finite_loss([0.3, 0.2], None)[0] and not check_finite_loss([0.3], math.inf)[0]


def test_loss_improved_needs_a_drop_beyond_batch_noise():
    noisy = [0.30, 0.35, 0.28, 0.33, 0.31, 0.29, 0.34, 0.30, 0.32, 0.28]
    assert not check_loss_improved(noisy)[0]  # the last 5 average lower, within noise
    drop = [0.30, 0.32, 0.26, 0.21, 0.20, 0.06, 0.05, 0.05, 0.04, 0.05]
    passed, md = check_loss_improved(drop)
    assert passed and md["window"] == 5 and md["drop"] > 2 * md["drop_stderr"]
    assert not check_loss_improved(list(reversed(drop)))[0]
    assert check_loss_improved([0.3, 0.4])[1]["judged"] is False
