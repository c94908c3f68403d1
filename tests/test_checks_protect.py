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
def graph(one_thread_module, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("protect")
    mp = pytest.MonkeyPatch()
    _, data_root = scratch_project(tmp, tmp / "unused", mp)
    mp.setenv("AHRIUWU_SOURCE", "demo")  # labelled videos: the action check needs actions
    from pipeline.demo import run_all
    from pipeline.resources import resources_from_env

    instance = DagsterInstance.get()
    outcome = run_all(instance, resources_from_env())
    yield instance, data_root, outcome, mp
    instance.dispose()
    mp.undo()


def _use_slow_preset(mp, name: str):
    """The tiny preset under `name`, with a loss logged every step (so loss_improved is judged) and a learning
    rate too small to lower it in 12 steps (3e-4 under the 30-step warmup); made the environment's preset."""
    from ahriuwu_core import presets

    tiny = presets.get_preset("tiny")
    optim = dataclasses.replace(tiny.dynamics.optim, lr=3e-4)
    slow = dataclasses.replace(tiny, name=name, dynamics=dataclasses.replace(tiny.dynamics, log_every=1, optim=optim))
    mp.setitem(presets.PRESETS, name, slow)
    mp.setenv("AHRIUWU_PRESET", name)
    return slow


def _data_version(instance, key: str) -> str:
    [record] = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(key)), limit=1).records
    return record.asset_materialization.tags["dagster/data_version"]


def _metadata(instance, key: str) -> dict:
    [record] = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(key)), limit=1).records
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def test_dynamics_checks_pass_on_a_normal_tiny_run_and_it_is_published(graph):
    instance, data_root, outcome, _ = graph
    assert outcome and all(outcome.values()), outcome
    for name in DYNAMICS_CHECKS:
        passed, md = recorded(instance, "dynamics", name)
        assert passed and md["published"], (name, md)
    # The tiny run logs 2 losses: too few to tell a drop from batch noise, so not judged (and says so). Logged
    # every step its 12 losses are batch noise still (measured: a drop of 0.02 where 2 standard errors are 0.036):
    # the next test judges it on such a run.
    assert recorded(instance, "dynamics", "loss_improved")[1]["judged"] is False
    md = recorded(instance, "dynamics", "action_alive")[1]
    assert md["judged"] and md["relative_change"] > 1e-4 and md["embedding_change"] > 1e-5, md
    md = _metadata(instance, "dynamics")
    published = data_root / "dynamics" / "dynamics.pt"  # a link to the content-addressed model
    assert published.is_symlink() and published.resolve() == Path(md["model"])
    assert (
        Path(md["model"]).parent == data_root / "dynamics" / "models"
        and Path(md["model"]).stem == md["model_sha256"][:16]
    )
    assert published.read_bytes() == Path(md["checkpoint"]).read_bytes()


def test_a_world_model_whose_loss_does_not_improve_is_blocked_by_loss_improved_alone(graph):
    """A loss logged every step, so loss_improved is judged, and a learning rate too small to lower it in 12
    steps (3e-4 under the 30-step warmup: its losses are batch noise): loss_improved fails, judged, while
    finite_loss and action_alive (its action path trained a little) pass. That one failed check keeps the
    published world model byte-identical and skips evaluation; the failed one stays in its run folder."""
    instance, data_root, _, mp = graph
    from pipeline.demo import run_all
    from pipeline.resources import resources_from_env

    slow = _use_slow_preset(mp, "tiny_slow")
    published = data_root / "dynamics" / "dynamics.pt"
    before, model = published.read_bytes(), published.resolve()
    version_before = _data_version(instance, "dynamics")
    try:
        outcome = run_all(instance, resources_from_env())
    finally:
        mp.setenv("AHRIUWU_PRESET", "tiny")
    assert outcome["tokenizer"] and not outcome["dynamics"] and not outcome["evaluation"], outcome
    assert recorded(instance, "dynamics", "finite_loss")[0]
    passed, md = recorded(instance, "dynamics", "action_alive")
    assert passed and md["judged"], md
    passed, md = recorded(instance, "dynamics", "loss_improved")
    assert md["judged"] and md["logged_losses"] == slow.dynamics.steps and md["window"] == 5, md
    assert not passed and md["drop"] < 2 * md["drop_stderr"] and md["published"] is False, md
    assert md["kept_model"] == str(model) and published.resolve() == model
    failed = Path(md["checkpoint"])
    assert failed.parent.parent == data_root / "dynamics" / "runs" and failed.exists()
    assert published.read_bytes() == before and failed.read_bytes() != before
    assert _metadata(instance, "dynamics")["checkpoint"] == str(failed)
    # The failed run recorded the current model's data version, so nothing downstream follows it.
    assert _data_version(instance, "dynamics") == version_before


def test_a_collapsed_tokenizer_leaves_the_published_one_and_stops_its_dependents(graph, monkeypatch):
    """The decoder forced to one picture for every input: not_collapsed fails, tokenizer.pt stays byte-identical,
    the failed checkpoint stays in its run folder, and run_all runs no latents, dynamics or evaluation."""
    instance, data_root, _, _ = graph
    from ahriuwu_core.tokenizer.cnn import CNNTokenizer
    from pipeline.demo import run_all
    from pipeline.resources import resources_from_env

    published = data_root / "tokenizer" / "tokenizer.pt"
    before, model = published.read_bytes(), published.resolve()
    version_before = _data_version(instance, "tokenizer")
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
    assert not passed and md["published"] is False and md["kept_model"] == str(model)
    failed = Path(md["checkpoint"])
    assert failed.parent.parent == data_root / "tokenizer" / "runs" and failed.exists()
    # (Its weights may equal the published ones: the forced decoder is the check's view, not training's.)
    assert published.read_bytes() == before and published.resolve() == model
    assert _metadata(instance, "tokenizer")["published"] is False
    # The failed run recorded the current model's data version: in Dagster's judgement no latents went stale.
    from dagster._utils.test.data_versions import get_stale_status_resolver

    from pipeline.definitions import ALL_ASSETS

    assert _data_version(instance, "tokenizer") == version_before
    resolver = get_stale_status_resolver(instance, ALL_ASSETS)
    assert all(
        resolver.get_status(AssetKey("latents"), v).value == "FRESH" for v in instance.get_dynamic_partitions("videos")
    )


def _materializations(instance, key: str) -> int:
    return len(instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(key)), limit=1000).records)


def test_a_failed_check_inside_one_run_skips_what_it_guards_and_stales_nothing(graph, monkeypatch):
    """As when the UI materializes a selection in one run: dynamics with its evaluation, then the tokenizer with a
    video's latents. The guarded asset's blocking check fails; Dagster skips its dependent inside the same run,
    and in Dagster's own judgement nothing downstream went stale (the failed run recorded the current model)."""
    instance, data_root, _, mp = graph
    from dagster import AssetSelection, materialize
    from dagster._utils.test.data_versions import get_stale_status_resolver

    from ahriuwu_core.tokenizer.cnn import CNNTokenizer
    from pipeline.definitions import ALL_ASSETS
    from pipeline.resources import resources_from_env

    def one_run(*keys, partition=None):
        before = {k: _materializations(instance, k) for k in keys}
        result = materialize(
            ALL_ASSETS,
            selection=AssetSelection.assets(*keys),
            partition_key=partition,
            instance=instance,
            resources=resources_from_env(),
            raise_on_error=False,
        )
        assert not result.success
        return {k: _materializations(instance, k) - before[k] for k in keys}

    def stale_from(key, dependency, partitions=(None,)):
        """Whether Dagster judges `key` stale because of `dependency` (earlier tests left other causes)."""
        resolver = get_stale_status_resolver(instance, ALL_ASSETS)
        causes = [c for p in partitions for c in resolver.get_stale_causes(AssetKey(key), p)]
        return any(c.dependency is not None and c.dependency.asset_key == AssetKey(dependency) for c in causes)

    _use_slow_preset(mp, "tiny_slow2")
    version = _data_version(instance, "dynamics")
    try:
        made = one_run("dynamics", "evaluation")
    finally:
        mp.setenv("AHRIUWU_PRESET", "tiny")
    assert not recorded(instance, "dynamics", "loss_improved")[0]
    assert made == {"dynamics": 1, "evaluation": 0}  # the evaluation step never ran
    assert _data_version(instance, "dynamics") == version and not stale_from("evaluation", "dynamics")

    monkeypatch.setattr(
        CNNTokenizer,
        "decode",
        lambda self, latents: torch.full((*latents.shape[:2], 3, self.cfg.image_size, self.cfg.image_size), 0.5),
    )
    for run in (data_root / "tokenizer" / "runs").iterdir():
        for f in run.iterdir():
            f.unlink()
    video = instance.get_dynamic_partitions("videos")[0]
    version = _data_version(instance, "tokenizer")
    assert not stale_from("latents", "tokenizer", instance.get_dynamic_partitions("videos"))
    made = one_run("tokenizer", "latents", partition=video)
    assert not recorded(instance, "tokenizer", "not_collapsed")[0]
    assert made == {"tokenizer": 1, "latents": 0}
    assert _data_version(instance, "tokenizer") == version
    assert not stale_from("latents", "tokenizer", instance.get_dynamic_partitions("videos"))


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


def _toy_stores(root: Path, labelled: bool = True) -> list[Path]:
    """Two short toy videos whose blob moves by the action (`ahriuwu_core.testing.toy`), on a 4x4 token grid."""
    from ahriuwu_core.dynamics.data import write_latent_store
    from ahriuwu_core.testing.toy import make_toy_latents

    stores = []
    for i in range(2):
        lat, act, has = make_toy_latents(48, grid=4, dim=4, seed=i, hold=1)
        stores.append(write_latent_store(root / f"v{i}.zarr", lat, *((act, has) if labelled else ())))
    return stores


def _train_tiny(stores, out: Path, **over):
    """The demo's world-model design at toy size: the clean persistence prior through an action-chosen 3x3 filter
    fitted by least squares before training (so the prior alone answers to the actions), the action on every
    latent token; 6 steps."""
    from ahriuwu_core.dynamics.load import load_dynamics
    from ahriuwu_core.dynamics.train import DynamicsTrainConfig, train_dynamics
    from ahriuwu_core.training.optim import OptimConfig

    model = dict(pack=1, d_model=16, n_layers=2, n_heads=2, n_kv_heads=1, time_every=1, n_registers=1, k_max=4)
    model.update(persistence_prior=True, prior_kernel=3, action_to_latents=True)
    cfg = DynamicsTrainConfig(
        model=model,
        steps=6,
        batch_size=4,
        seq_len=4,
        long_ratio=0.0,
        stride=1,
        prior_fit_windows=16,
        optim=OptimConfig(lr=float(over.pop("lr", 2e-3)), warmup_steps=1),
        ckpt_every=100,
        log_every=100,
        **over,
    )
    result = train_dynamics(stores, cfg, out, log=lambda s: None)
    return load_dynamics(result["checkpoint"])


@pytest.mark.usefixtures("one_thread")
def test_action_alive_judges_what_training_did_to_the_action_path_not_the_fitted_prior(tmp_path, monkeypatch):
    """The least-squares prior answers to the actions before any training step: a run that trained nothing, or
    whose network never got the action labels (its action embeddings got no gradient), must fail; a normal run
    passes; a dataset without labels is not judged."""
    from ahriuwu_core.dynamics.checks import check_action_alive
    from ahriuwu_core.dynamics.model import WorldModel

    stores = _toy_stores(tmp_path / "data")
    model, cfg = _train_tiny(stores, tmp_path / "normal")
    passed, md = check_action_alive(model, stores, train_seed=cfg.seed)
    assert passed and md["judged"], md
    assert md["relative_change"] > 1e-3 and md["embedding_change"] > 1e-4, md

    model, cfg = _train_tiny(stores, tmp_path / "lr0", lr=0.0)
    passed, md = check_action_alive(model, stores, train_seed=cfg.seed)
    assert md["relative_change_with_prior"] > 1e-2, md  # the fitted prior alone moves the prediction ...
    assert not passed and md["relative_change"] == 0.0 and md["embedding_change"] < 1e-6, md  # ... training did not

    embed = WorldModel.embed  # training whose network never sees a label: the labels are dropped on the way in
    with monkeypatch.context() as m:
        m.setattr(WorldModel, "embed", lambda self, p, v, t, s, a, h: embed(self, p, v, t, s, a, torch.zeros_like(h)))
        model, cfg = _train_tiny(stores, tmp_path / "no_labels")
    passed, md = check_action_alive(model, stores, train_seed=cfg.seed)
    assert md["relative_change"] > 1e-3, md  # its untrained embeddings still perturb the trained network ...
    assert not passed and md["embedding_change"] < 1e-6, md  # ... but they never learnt anything

    unlabelled = _toy_stores(tmp_path / "unlabelled", labelled=False)
    model, cfg = _train_tiny(unlabelled, tmp_path / "unlabelled_run")
    assert check_action_alive(model, unlabelled, train_seed=cfg.seed) == (
        True,
        {"judged": False, "reason": "no training frame is labelled with an action"},
    )
