"""The whole graph, materialized in a real (sqlite) Dagster instance on three tiny demo videos.

One module-scoped materialization serves every test here, in file order: files and metadata, the UI in a real
browser, then the staleness tests (which change the data, so they come last).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import zarr
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from ahriuwu_core.eval.rollouts import clip_starts
from ahriuwu_core.images.metrics import psnr
from tests._checks import recorded
from tests._servers import free_port, stop_group

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """Materialize every asset once with the `tiny` preset; yield (instance, resources, data_root, home)."""
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    data_root = tmp_path_factory.mktemp("assets")
    env = {
        "DAGSTER_HOME": str(home),
        "AHRIUWU_DATA_ROOT": str(data_root),
        "AHRIUWU_PRESET": "tiny",
        "AHRIUWU_SOURCE": "demo",
        "AHRIUWU_AUTOMATION": "off",
        "AHRIUWU_DEVICE": "cpu",
    }
    mp = pytest.MonkeyPatch()  # module-scoped fixture: the function-scoped `monkeypatch` is not available
    for k, v in env.items():
        mp.setenv(k, v)
    from pipeline.demo import run_all
    from pipeline.resources import resources_from_env

    instance = DagsterInstance.get()
    resources = resources_from_env()
    outcome = run_all(instance, resources)
    yield instance, resources, data_root, home, outcome
    instance.dispose()
    mp.undo()


def latest_metadata(instance, key: str, partition: str | None = None) -> dict:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(key), asset_partitions=[partition] if partition else None), limit=1
    ).records
    assert records, f"{key}[{partition}] was never materialized"
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def test_every_step_succeeded(graph):
    *_, outcome = graph
    assert outcome and all(outcome.values()), outcome


def test_files_shapes_and_metadata(graph, tmp_path):
    instance, resources, data_root, _, _ = graph
    from ahriuwu_core.presets import get_preset

    preset = get_preset("tiny")
    ids = instance.get_dynamic_partitions("videos")
    assert ids == [f"demo_{i:03d}" for i in range(preset.demo.num_videos)]
    for vid in ids:
        assert (data_root / "videos" / vid / "info.json").exists()
        assert (data_root / "videos" / vid / "actions.json").exists()
        group = zarr.open_group(str(data_root / "frames" / f"{vid}.zarr"), mode="r")
        T = group["frames"].shape[0]
        assert group["frames"].shape == (T, preset.frames.height, preset.frames.width, 3)
        assert group["frames"].dtype == np.uint8
        assert abs(T - int(preset.demo.duration_s * 20)) <= 1
        has_actions = np.asarray(group["has_actions"][:])
        assert has_actions[1:].all() and not has_actions[0]  # no action led into the first frame
        lat = zarr.open_group(str(data_root / "latents" / f"{vid}.zarr"), mode="r")
        assert lat["latents"].shape[0] == T and lat["latents"].dtype == np.float16
        assert len(lat.attrs["tokenizer_sha256"]) == 64
        md = latest_metadata(instance, "frames", vid)
        assert md["num_frames"] == T
        assert latest_metadata(instance, "videos", vid)["sha256"]
    manifest = json.loads((data_root / "manifest.json").read_text())
    assert sorted(manifest["train"] + manifest["validation"] + manifest["test"]) == ids
    assert manifest["train"] and manifest["validation"] and manifest["test"]  # the tiny preset has one of each
    tok = latest_metadata(instance, "tokenizer")
    # Better than the best constant answer: the training frames' mean image, scored on the validation frames.
    train_frames = np.concatenate(
        [np.asarray(zarr.open_group(str(data_root / "frames" / f"{v}.zarr"))["frames"]) for v in manifest["train"]]
    )
    mean_image = train_frames.mean(0).round().astype(np.uint8)
    held = np.concatenate(
        [np.asarray(zarr.open_group(str(data_root / "frames" / f"{v}.zarr"))["frames"]) for v in manifest["validation"]]
    )
    mean_psnr = float(np.mean(psnr(np.broadcast_to(mean_image, held.shape), held)))
    assert tok["params"] > 0 and tok["heldout_psnr"] > mean_psnr + 3.0, (tok["heldout_psnr"], mean_psnr)
    # ... and better than its start: the same tokenizer at step 0, its linear path PCA-initialised, which alone
    # beats the mean image by far (measured: 33.4 dB at step 0, 34.9 dB after the preset's 16 steps).
    from ahriuwu_core.tokenizer import train_tokenizer

    stores = {s: [data_root / "frames" / f"{v}.zarr" for v in manifest[s]] for s in ("train", "validation")}
    start_cfg = dataclasses.replace(preset.tokenizer_config(), steps=0)
    start = train_tokenizer(stores["train"], stores["validation"], start_cfg, tmp_path / "start", log=lambda s: None)
    assert tok["heldout_psnr"] > start["heldout_psnr"] + 0.75, (tok["heldout_psnr"], start["heldout_psnr"])
    dyn = latest_metadata(instance, "dynamics")
    assert dyn["params"] > 0 and np.isfinite(dyn["loss_last"])
    # The published world model is the preset's, on the latents' shape, trained for the preset's steps.
    from ahriuwu_core.dynamics.load import load_world_model

    model = load_world_model(data_root / "dynamics" / "dynamics.pt")
    assert (model.cfg.num_tokens, model.cfg.token_dim) == tuple(lat["latents"].shape[1:])
    assert model.num_params() == dyn["params"] and dyn["steps"] == preset.dynamics.steps
    data_fields = ("num_tokens", "token_dim", "action_num_classes")  # from the data
    assert all(
        getattr(model.cfg, f.name) == getattr(preset.dynamics.model, f.name)
        for f in dataclasses.fields(model.cfg)
        if f.name not in data_fields
    )
    ev = latest_metadata(instance, "evaluation")
    assert "data:image/png;base64," in ev["prediction_strip"]
    assert "test_psnr_h1_model_k4" in ev and "validation_psnr_h1_persistence" in ev
    from ahriuwu_core.play.server import DEFAULT_PORT

    assert (
        ev["play"] == f"http://127.0.0.1:{DEFAULT_PORT}/"
        and ev["play_command"]
        == f'make play DATA_ROOT={data_root} PLAY_ARGS="--tokenizer {ev["tokenizer_sha256"][:16]} '
        f'--dynamics {ev["dynamics_sha256"][:16]}"'
    )
    metrics = json.loads(Path(ev["report"]).with_name("metrics.json").read_text())
    assert metrics["splits"] == ["test", "validation"]
    for split in metrics["splits"]:
        m = metrics[split]
        assert set(m["psnr"]) >= {
            "model_k4",
            "model_k64",
            "persistence",
            "tokenizer_ceiling",
            "persistence_motion",
            "latent_persistence",
            "persistence_blur",
            "prior_only",
            "scroll_oracle",
        }
        assert len(m["psnr"]["model_k4"]) == len(m["horizons"])
        assert m["videos"] == manifest[split] and m["clips"] == preset.evaluation.clips_per_video
        assert ev[f"{split}_videos"] == ", ".join(manifest[split])
        # the UI shows 4 significant digits of metrics.json's figure
        assert ev[f"{split}_psnr_h1_model_k4"] == pytest.approx(m["psnr"]["model_k4"][0], rel=1e-3)
        assert len(repr(ev[f"{split}_psnr_h1_model_k4"])) <= 6
    metrics = metrics["test"]
    # The UI's figures are metrics.json's, and persistence is what copying the last context frame scores.
    store = zarr.open_group(str(data_root / "frames" / f"{manifest['test'][0]}.zarr"))
    C = preset.evaluation.context
    start = clip_starts(store["frames"].shape[0], C + preset.evaluation.horizon, 1)[0]
    clip = np.asarray(store["frames"][start : start + C + 1])
    hud = np.asarray(store["hud_mask"][:])
    assert metrics["psnr"]["persistence"][0] == pytest.approx(float(psnr(clip[C - 1], clip[C], hud)), abs=1e-6)


def _recorded_metadata(instance, key: str, partition: str | None = None) -> tuple[dict, dict]:
    """The latest materialization's metadata as recorded (MetadataValue objects, types included) and its tags."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(key), asset_partitions=[partition] if partition else None), limit=1
    ).records
    return dict(records[0].asset_materialization.metadata), records[0].asset_materialization.tags


def test_links_tables_checkpoints_and_curves(graph):
    """The source URL is a link; the evaluation's PSNR table a typed table of metrics.json's figures; each training
    stage records its run folder's checkpoint (whose hash is its data version) next to the published one, its
    loss curve as a picture, and TensorBoard event files in the run folder holding the logged losses."""
    from dagster import MarkdownMetadataValue, PathMetadataValue, TableMetadataValue, UrlMetadataValue

    from ahriuwu_core.data.catalog import catalog_entry
    from ahriuwu_core.data.manifest import file_sha256
    from tests._tensorboard import scalars

    instance, _, data_root, _, _ = graph
    for vid in instance.get_dynamic_partitions("videos"):
        url = _recorded_metadata(instance, "videos", vid)[0]["url"]
        assert isinstance(url, UrlMetadataValue) and url.url == catalog_entry(data_root, vid)["url"] != ""
    for stage in ("tokenizer", "dynamics"):
        md, tags = _recorded_metadata(instance, stage)
        ckpt, model = md["checkpoint"], md["model"]
        assert isinstance(ckpt, PathMetadataValue) and isinstance(model, PathMetadataValue)
        run_dir = Path(ckpt.path).parent
        assert run_dir.parent == data_root / stage / "runs" and Path(ckpt.path).name == f"{stage}.pt"
        # published content-addressed, with <stage>.pt a link to it
        sha = md["model_sha256"].value
        assert Path(model.path) == data_root / stage / "models" / f"{sha[:16]}.pt"
        assert (data_root / stage / f"{stage}.pt").resolve() == Path(model.path)
        assert tags["dagster/data_version"] == file_sha256(ckpt.path) == file_sha256(model.path) == sha
        curve = md["loss_curve"]
        assert isinstance(curve, MarkdownMetadataValue) and "data:image/png;base64," in curve.md_str
        logged = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
        losses = scalars(run_dir)["train/loss"]
        assert losses == [(r["step"], pytest.approx(r["loss"])) for r in logged] and len(losses) >= 2, stage
        # the UI says where those curves are and how to show them
        assert md["tensorboard_run"].value == str(run_dir.relative_to(data_root))
        assert md["tensorboard_command"].value == f"tensorboard --logdir {run_dir}"
    ev = latest_metadata(instance, "evaluation")
    metrics = json.loads(Path(ev["report"]).with_name("metrics.json").read_text())
    for split in ("test", "validation"):
        table = _recorded_metadata(instance, "evaluation")[0][f"{split}_psnr_table"]
        assert isinstance(table, TableMetadataValue)
        m = metrics[split]
        names = [n for n in m["psnr"] if m["psnr"][n] is not None]
        assert [c.name for c in table.schema.columns] == ["horizon", *names, "action_gap_db"]
        assert [r.data["horizon"] for r in table.records] == m["horizons"]
        for i, record in enumerate(table.records):
            assert all(record.data[n] == pytest.approx(m["psnr"][n][i]) for n in names)


UI = 1e-3  # a float as the UI records it: 4 significant digits (pipeline.assets.common.readable)


def test_recorded_checks_match_their_inputs(graph, tmp_path):
    """Every check of the graph run, read back from the instance, against figures this test computes itself from
    the stores, the videos, the manifest and the published models; and each check function, given a doctored
    copy of its input, flips. A check that always passes, or reads another figure than its own, fails here."""
    import copy
    import math

    import av
    import torch

    from ahriuwu_core.data.checked_store import create_array
    from ahriuwu_core.data.frames import check_frame_count, check_not_black_or_frozen
    from ahriuwu_core.data.split import check_split_disjoint
    from ahriuwu_core.dynamics.checks import (
        check_action_alive,
        check_finite_loss,
        check_loss_improved,
        initial_action_embeddings,
    )
    from ahriuwu_core.dynamics.load import load_dynamics
    from ahriuwu_core.eval.checks import check_beats_persistence, check_few_steps_close, check_no_nan
    from ahriuwu_core.presets import get_preset
    from ahriuwu_core.tokenizer import load_tokenizer
    from ahriuwu_core.tokenizer.quality import collapse_check

    instance, _, data_root, _, _ = graph
    preset = get_preset("tiny")
    manifest = json.loads((data_root / "manifest.json").read_text())

    # frames: the frame count against the container's duration (read here with PyAV), and the brightness and
    # stillness of the stored frames, computed here over the whole array.
    for vid in instance.get_dynamic_partitions("videos"):
        group = zarr.open_group(str(data_root / "frames" / f"{vid}.zarr"), mode="r")
        frames = np.asarray(group["frames"])
        [video] = (data_root / "videos" / vid).glob("video.*")
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            duration = float(stream.duration * stream.time_base)
        expected = math.floor(duration * preset.frames.fps)
        passed, md = recorded(instance, "frames", "frame_count", vid)
        assert (md["num_frames"], md["expected"]) == (len(frames), expected)
        assert passed == (abs(len(frames) - expected) <= 1)
        stats = {"num_frames": expected + 2, "container_duration_s": duration, "fps": preset.frames.fps}
        assert not check_frame_count(stats)[0] and check_frame_count({**stats, "num_frames": expected})[0]

        mean = frames.mean() / 255
        steps = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
        frozen = float((steps < 1.0).mean())
        passed, md = recorded(instance, "frames", "not_black_or_frozen", vid)
        assert md["mean_intensity"] == pytest.approx(mean, rel=UI, abs=1e-4)
        assert md["frozen_fraction"] == pytest.approx(frozen, rel=UI, abs=1e-4)
        assert passed == (mean >= 4 / 255 and frozen <= 0.95)
    for name, doctored in {"black": np.zeros_like(frames), "frozen": np.repeat(frames[:1], len(frames), 0)}.items():
        group = zarr.open_group(str(tmp_path / f"{name}.zarr"), mode="w")
        create_array(group, "frames", data=doctored, chunks=(8, *frames.shape[1:]))
        assert not check_not_black_or_frozen(tmp_path / f"{name}.zarr")[0], name

    # The manifest's split, and the evaluated videos, against the manifest's training videos.
    train, evaluated = set(manifest["train"]), manifest["validation"] + manifest["test"]
    assert recorded(instance, "dataset_manifest", "split_disjoint")[0] == (not train & set(evaluated))
    assert not check_split_disjoint(manifest["train"], manifest["train"][:1])[0]

    # The tokenizer: distinct validation frames (16 evenly spaced, as its evaluation takes them) through the
    # published tokenizer, here; and a decoder that draws one picture for every frame fails.
    passed, md = recorded(instance, "tokenizer", "not_collapsed")
    [held] = manifest["validation"]
    frames = np.asarray(zarr.open_group(str(data_root / "frames" / f"{held}.zarr"), mode="r")["frames"])
    frames = frames[np.unique(np.linspace(0, len(frames) - 1, 16).round().astype(int))]
    tok = load_tokenizer(data_root / "tokenizer" / "tokenizer.pt")
    again = collapse_check(tok, frames)[1]
    assert md["collapse_recon_ratio"] == pytest.approx(again["recon_ratio"], rel=UI)
    assert md["collapse_latent_ratio"] == pytest.approx(again["latent_ratio"], rel=UI)
    assert passed and again["recon_ratio"] >= 0.5 and again["latent_ratio"] >= 0.05
    tok.decode = lambda latents: torch.full((*latents.shape[:2], 3, *frames.shape[1:3]), 0.5)
    assert not collapse_check(tok, frames)[0]

    # The world model: the losses of its run folder's log, read here; the action check on the published model
    # and the training videos, and on that model with its action embeddings put back to where training began.
    run_dir = Path(latest_metadata(instance, "dynamics")["checkpoint"]).parent
    losses = [json.loads(line)["loss"] for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    passed, md = recorded(instance, "dynamics", "finite_loss")
    assert passed == all(math.isfinite(v) for v in losses) and md["logged_losses"] == len(losses)
    assert not check_finite_loss([*losses, math.nan], losses[-1])[0]
    passed, md = recorded(instance, "dynamics", "loss_improved")
    assert passed and md["judged"] is (len(losses) >= 6) and md["logged_losses"] == len(losses)
    assert not check_loss_improved([0.3, 0.31, 0.3, 0.29, 0.31, 0.3])[0]
    passed, md = recorded(instance, "dynamics", "action_alive")
    model, trained_with = load_dynamics(data_root / "dynamics" / "dynamics.pt")
    stores = [data_root / "latents" / f"{v}.zarr" for v in manifest["train"]]
    alive, again = check_action_alive(model, stores, train_seed=trained_with.seed)
    assert passed and alive and md["relative_change"] == pytest.approx(again["relative_change"], rel=UI)
    assert md["embedding_change"] == pytest.approx(again["embedding_change"], rel=UI)
    with torch.no_grad():
        for table, start in zip(model.action_embed, initial_action_embeddings(model, trained_with.seed)):
            table.weight.copy_(start)
    assert not check_action_alive(model, stores, train_seed=trained_with.seed)[0]

    # The evaluation. Persistence at h=1 on the one test clip, computed here from the frames: the clip sits in
    # the middle of the video; with one clip the margin's interval is that clip's margin itself.
    ev = latest_metadata(instance, "evaluation")
    metrics = json.loads(Path(ev["report"]).with_name("metrics.json").read_text())
    [vid] = manifest["test"]
    group = zarr.open_group(str(data_root / "frames" / f"{vid}.zarr"), mode="r")
    C, H = preset.evaluation.context, preset.evaluation.horizon
    start = (group["frames"].shape[0] - (C + H)) // 2
    clip = np.asarray(group["frames"][start : start + C + 1])
    persistence = float(psnr(clip[C - 1], clip[C], np.asarray(group["hud_mask"])))
    assert metrics["test"]["clips"] == 1
    passed, md = recorded(instance, "evaluation", "beats_persistence_h1")
    fast, slow = (f"model_k{k}" for k in (min(preset.evaluation.sampling_steps), max(preset.evaluation.sampling_steps)))
    assert (md["series"], md["horizon"], md["split"]) == (fast, 1, "test")
    assert md["persistence_psnr"] == pytest.approx(persistence, rel=UI)
    assert md["model_psnr"] == pytest.approx(metrics["test"]["psnr"][fast][0], rel=UI)
    assert md["margin_ci95_low"] == pytest.approx(md["model_psnr"] - persistence, abs=0.02)
    assert passed == (md["model_psnr"] - persistence > 0)
    for low, verdict in ((-0.01, False), (0.01, True)):  # h=1 of the first variant only
        doctored = copy.deepcopy(metrics)
        doctored["test"]["psnr_margin_ci95_low"][fast][0] = low
        doctored["test"]["psnr_margin_ci95_low"][fast][1:] = [-low] * (len(metrics["test"]["horizons"]) - 1)
        for other in doctored["test"]["psnr_margin_ci95_low"]:
            if other != fast:
                doctored["test"]["psnr_margin_ci95_low"][other] = [-low] * len(metrics["test"]["horizons"])
        doctored["validation"]["psnr_margin_ci95_low"][fast] = [-low] * len(metrics["validation"]["horizons"])
        assert check_beats_persistence(doctored, 1)[0] is verdict, low

    # K=4 within 0.5 dB of K=64 at every horizon: the two series of the test split (same clips: one per video).
    passed, md = recorded(instance, "evaluation", "few_steps_close")
    a, b = metrics["test"]["psnr"][fast], metrics["test"]["psnr"][slow]
    worst = max(abs(y - x) for x, y in zip(a, b))
    assert (md["fast"], md["slow"]) == (fast, slow) and md["max_abs_diff_db"] == pytest.approx(worst, rel=UI, abs=1e-6)
    assert passed == (worst <= 0.5)
    for shift, verdict in ((0.6, False), (0.0, True)):  # the last horizon's K=64 figure moved
        doctored = copy.deepcopy(metrics)
        doctored["test"]["psnr"][slow] = list(a[:-1]) + [a[-1] + shift]
        doctored["test"]["psnr_same_clips"] = {}
        assert check_few_steps_close(doctored)[0] is verdict, shift

    # No NaN: walked here; a NaN planted deep in a copy is found.
    def finite(obj):
        if isinstance(obj, dict):
            return all(finite(v) for v in obj.values())
        if isinstance(obj, list):
            return all(finite(v) for v in obj)
        return not isinstance(obj, float) or math.isfinite(obj)

    assert recorded(instance, "evaluation", "no_nan")[0] == finite({k: v for k, v in metrics.items() if k != "config"})
    doctored = copy.deepcopy(metrics)
    doctored["validation"]["ssim"]["persistence"][-1] = math.nan
    assert not check_no_nan(doctored)[0]
    evaluated = metrics["test"]["videos"] + metrics["validation"]["videos"]
    assert recorded(instance, "evaluation", "split_disjoint")[0] == (not train & set(evaluated))


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        out = json.loads(resp.read())
    assert "errors" not in out, out
    return out["data"]


LAUNCH = """
mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on InvalidSubsetError { message } ... on RunConfigValidationInvalid { errors { message } } } }
"""
STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


def test_ui_in_a_real_browser(graph):
    """`dg dev` on 127.0.0.1 as `make ui` starts it, driven by Playwright with Debian's chromium."""
    from playwright.sync_api import sync_playwright

    instance, _, data_root, home, _ = graph
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "AHRIUWU_DATA_ROOT": str(data_root),
        "AHRIUWU_PRESET": "tiny",
        "AHRIUWU_AUTOMATION": "off",
        "AHRIUWU_DEVICE": "cpu",
    }
    log = open(ARTIFACTS / "dg-dev.log", "w")
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("dg")),
            "dev",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            str(ROOT / "workspace.yaml"),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
                data = _graphql(port, "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }")
                if all(e["loadStatus"] == "LOADED" for e in data["workspaceOrError"]["locationEntries"]):
                    break
            except OSError:
                pass
            assert server.poll() is None, "dg dev exited; see test-artifacts/dg-dev.log"
            assert time.time() < deadline, "dg dev did not come up in 120 s"
            time.sleep(1)

        # A partition materialization launched over GraphQL (what the UI's button sends) succeeds.
        params = {
            "selector": {
                "repositoryLocationName": "ahriuwu",
                "repositoryName": "__repository__",
                "jobName": "__ASSET_JOB",
                "assetSelection": [{"path": ["frames"]}],
            },
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "demo_000"}]},
        }
        launched = _graphql(port, LAUNCH, {"params": params})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        deadline = time.time() + 180
        while (status := _graphql(port, STATUS, {"id": run_id})["runOrError"]["status"]) not in (
            "SUCCESS",
            "FAILURE",
            "CANCELED",
        ):
            assert time.time() < deadline, f"run {run_id} still {status}"
            time.sleep(2)
        assert status == "SUCCESS"

        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            # The first-visit "join the community" dialog can pop up at any moment (it once covered a click
            # after the page had settled): Playwright dismisses it whenever it blocks an action.
            skip = page.get_by_role("button", name="Skip")
            page.add_locator_handler(skip, lambda btn: btn.click())

            def open_page(path):
                page.goto(f"http://127.0.0.1:{port}{path}", wait_until="networkidle")

            # The whole graph upstream of evaluation, every asset a node.
            open_page("/assets/evaluation?view=lineage&lineageScope=upstream&lineageDepth=10")
            for name in ["videos", "frames", "dataset_manifest", "tokenizer", "latents", "dynamics", "evaluation"]:
                page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "asset-graph.png"))

            open_page("/assets/evaluation")
            page.get_by_text("test_psnr_h1_model_k4", exact=True).first.wait_for(timeout=60_000)
            page.get_by_text("metrics_table", exact=True).first.wait_for()
            row = page.locator("tr", has=page.get_by_text("prediction_strip", exact=True))
            row.get_by_text("[Show Markdown]").click()
            image = page.locator('img[src^="data:image/png"]').first
            image.wait_for(timeout=60_000)
            assert image.evaluate("img => img.naturalWidth") > 0
            page.screenshot(path=str(ARTIFACTS / "evaluation-strip.png"))
            browser.close()
    finally:
        stop_group(server)
        log.close()


def _materialize(instance, resources, names, partition=None, run_config=None):
    from dagster import AssetSelection, materialize

    from pipeline.definitions import ALL_ASSETS

    result = materialize(
        ALL_ASSETS,
        selection=AssetSelection.assets(*names),
        instance=instance,
        resources=resources,
        partition_key=partition,
        run_config=run_config,
    )
    assert result.success


def test_nothing_is_stale_after_a_full_run(graph):
    instance, *_ = graph
    from pipeline.definitions import ALL_ASSETS
    from tests._staleness import unsynced_partitions

    # The UI test re-ran frames[demo_000] on the same input: same content, same data version, nothing stale.
    assert unsynced_partitions(instance, ALL_ASSETS) == set()


def test_changing_one_video_stales_exactly_its_lineage(graph):
    instance, resources, data_root, *_ = graph
    from ahriuwu_core.demo.video import write_demo_videos
    from ahriuwu_core.presets import get_preset
    from pipeline.definitions import ALL_ASSETS
    from tests._staleness import stale_partitions, unsynced_partitions

    # New bytes for demo_001 at its source: another seed renders another game.
    other = data_root / "other_seed"
    cfg = get_preset("tiny").demo
    from dataclasses import replace

    write_demo_videos(other, replace(cfg, seed=cfg.seed + 99, num_videos=2))
    for suffix in (".mp4", ".actions.json"):
        shutil.copy(other / f"demo_001{suffix}", data_root / "demo_source" / f"demo_001{suffix}")
    _materialize(instance, resources, ["videos"], "demo_001", {"ops": {"videos": {"config": {"refetch": True}}}})

    # Dagster marks exactly that video's frames stale (its input's data version changed) ...
    assert stale_partitions(instance, ALL_ASSETS) == [("frames", "demo_001")]
    # ... and unsynced: its latents, the manifest, training and evaluation. Every video's latents are downstream
    # of the tokenizer, which retrains on the changed data, so they are unsynced too; no other video's frames are.
    ids = instance.get_dynamic_partitions("videos")
    assert unsynced_partitions(instance, ALL_ASSETS) == {
        ("frames", "demo_001"),
        ("dataset_manifest", None),
        ("tokenizer", None),
        ("dynamics", None),
        ("evaluation", None),
    } | {("latents", v) for v in ids}

    # "Materialize unsynced": rerun exactly those, in graph order; then nothing is stale.
    _materialize(instance, resources, ["frames"], "demo_001")
    _materialize(instance, resources, ["dataset_manifest", "tokenizer"])
    for vid in instance.get_dynamic_partitions("videos"):
        _materialize(instance, resources, ["latents"], vid)  # a new tokenizer re-encodes every video
    _materialize(instance, resources, ["dynamics", "evaluation"])
    assert unsynced_partitions(instance, ALL_ASSETS) == set()


def test_bumping_a_code_version_stales_it_and_its_downstream(graph):
    instance, *_ = graph
    from pipeline.definitions import ALL_ASSETS
    from tests._staleness import stale_partitions, unsynced_partitions

    bumped = [
        a.map_asset_specs(lambda s: s.replace_attributes(code_version="bumped")) if a.key.path == ["tokenizer"] else a
        for a in ALL_ASSETS
    ]
    assert stale_partitions(instance, bumped) == [("tokenizer", None)]
    ids = instance.get_dynamic_partitions("videos")
    assert unsynced_partitions(instance, bumped) == (
        {("tokenizer", None), ("dynamics", None), ("evaluation", None)} | {("latents", v) for v in ids}
    )


def test_other_frame_settings_or_another_source_stale_exactly_what_they_change(graph):
    """One dataset per identity: the resolved frame settings are part of `frames`' code version, the source is
    part of the manifest's; a different value stales that asset and what follows it, nothing else."""
    instance, resources, *_ = graph
    from pipeline.assets.common import DEPLOYMENT_PROJECT
    from pipeline.code_versions import code_version
    from pipeline.definitions import ALL_ASSETS
    from pipeline.resources import ProjectResource
    from tests._staleness import stale_partitions, unsynced_partitions

    here = DEPLOYMENT_PROJECT
    layout = "none" if here.preset_config().frames.hud_layout == "replay" else "replay"
    other_frames = ProjectResource(hud_layout=layout)  # the rest from the environment, as `here`
    other_source = ProjectResource(source="folder:/elsewhere")
    assert code_version("frames", other_frames) != code_version("frames", here)
    assert code_version("dataset_manifest", other_source) != code_version("dataset_manifest", here)
    assert code_version("tokenizer", other_frames) == code_version("tokenizer", here)  # it reads no frame setting

    def deployed(name, version):
        return [
            a.map_asset_specs(lambda s: s.replace_attributes(code_version=version)) if a.key.path == [name] else a
            for a in ALL_ASSETS
        ]

    ids = instance.get_dynamic_partitions("videos")
    training = {("tokenizer", None), ("dynamics", None), ("evaluation", None)} | {("latents", v) for v in ids}
    assets = deployed("frames", code_version("frames", other_frames))
    assert stale_partitions(instance, assets) == sorted(("frames", v) for v in ids)
    assert (
        unsynced_partitions(instance, assets) == {("frames", v) for v in ids} | {("dataset_manifest", None)} | training
    )
    assets = deployed("dataset_manifest", code_version("dataset_manifest", other_source))
    assert stale_partitions(instance, assets) == [("dataset_manifest", None)]
    assert unsynced_partitions(instance, assets) == {("dataset_manifest", None)} | training


STALE_STATUS = """
import json
from dagster import DagsterInstance
from dagster._utils.test.data_versions import get_stale_status_resolver
from pipeline.definitions import ALL_ASSETS

instance = DagsterInstance.get()
resolver = get_stale_status_resolver(instance, ALL_ASSETS)
out = {}
for asset in ALL_ASSETS:
    for pk in instance.get_dynamic_partitions("videos") if asset.partitions_def else [None]:
        causes = [c.reason for c in resolver.get_stale_causes(asset.key, pk)]
        out[asset.key.to_user_string() + (f"[{pk}]" if pk else "")] = [resolver.get_status(asset.key, pk).value, causes]
print(json.dumps(out))
"""


def test_a_code_or_preset_change_in_a_copy_stales_what_depends_on_it_in_dagsters_judgement(graph, tmp_path):
    """Code versions are derived (pipeline/code_versions.py), so no one bumps them. In a copy of the project:
    code changed in a module only the world model's training runs, a preset field only the evaluation reads, and
    only a docstring and a comment in the frame decoder every per-video stage runs. Dagster's own stale status, in
    a process that loads the copy's definitions, then shows the world model and the evaluation stale, each for its
    own code version, and nothing else (the frame decoder's stages stay fresh)."""
    *_, home, _ = graph

    def status(tree: Path) -> dict:
        env = {k: v for k, v in os.environ.items() if k != "AHRIUWU_PRESET"}  # as the definitions were imported
        env.update(DAGSTER_HOME=str(home), PYTHONPATH=str(tree))
        run = subprocess.run([sys.executable, "-c", STALE_STATUS], cwd=tree, env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-3000:]
        return json.loads(run.stdout.splitlines()[-1])

    def copy(name: str, edits: list[tuple[str, str, str]]) -> Path:
        tree = tmp_path / name
        for package in ("ahriuwu_core", "pipeline"):
            shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
        for path, old, new in edits:
            text = (tree / path).read_text()
            assert text.count(old) == 1, (path, old)
            (tree / path).write_text(text.replace(old, new))
        return tree

    before = status(copy("same", []))
    assert {k for k, (s, _) in before.items() if s != "FRESH"} == set(), before
    changed = [
        ("ahriuwu_core/dynamics/objective.py", "\nimport math\n", "\nimport math\n\nOBJECTIVE_REVISION = 2\n"),
        ("ahriuwu_core/presets.py", "many_steps_clips_per_video=2,", "many_steps_clips_per_video=3,"),
        ("ahriuwu_core/data/frames.py", "resample it to exactly 20 fps", "resample it to 20 fps exactly"),
        ("ahriuwu_core/data/frames.py", "\nimport errno\n", "\n# a comment\nimport errno\n"),
    ]
    after = status(copy("changed", changed))
    stale = {k: causes for k, (s, causes) in after.items() if s != "FRESH"}
    assert set(stale) == {"dynamics", "evaluation"}, after
    assert stale == {"dynamics": ["has a new code version"], "evaluation": ["has a new code version"]}, stale


def test_a_launchpad_override_records_the_runs_own_code_version_and_shows_stale(graph):
    """A run whose project is overridden (the launchpad's resources section) records the code version of what it
    computed, not the deployment's: here the tiny preset's split, where the deployment's is the demo preset's.
    Dagster then shows the manifest stale against the deployed definitions until a plain run rewrites it."""
    instance, resources, *_ = graph
    from dagster._utils.test.data_versions import get_stale_status_resolver

    from pipeline.code_versions import CODE_VERSION_TAG, code_version
    from pipeline.definitions import ALL_ASSETS
    from pipeline.resources import ProjectResource

    def recorded_version():
        records = instance.fetch_materializations(key, limit=1).records
        return records[0].asset_materialization.tags[CODE_VERSION_TAG]

    def status():
        return get_stale_status_resolver(instance, ALL_ASSETS).get_status(key).value

    key = AssetKey("dataset_manifest")
    deployed = next(a for a in ALL_ASSETS if key in a.keys).code_versions_by_key[key]  # the environment at import
    overridden = ProjectResource(preset="tiny", source="demo")
    assert overridden.overridden() == {"preset": "tiny", "source": "demo"} and ProjectResource().overridden() == {}
    assert code_version("dataset_manifest", overridden) != deployed
    _materialize(instance, {**resources, "project": overridden}, ["dataset_manifest"])
    assert recorded_version() == code_version("dataset_manifest", overridden)
    assert status() == "STALE"
    _materialize(instance, resources, ["dataset_manifest"])  # the environment's project: the deployed version
    assert recorded_version() == deployed and status() == "FRESH"


@pytest.mark.parametrize("stage, called", [("dynamics", "world model"), ("tokenizer", "tokenizer")])
def test_evaluation_scores_a_past_model_by_its_sha_and_refuses_one_that_trained_on_a_test_video(
    graph, tmp_path, stage, called
):
    """Published models stay: the evaluation's launchpad config picks one by its sha256 prefix. This one's
    checkpoint says it trained on a test video, so the blocking leak check (against the checkpoint's own training
    list, not the manifest's) refuses it before any rollout, naming the model; the current model stays current.
    Both models are judged: a tokenizer that saw a test video leaks as a world model does."""
    import torch

    from ahriuwu_core.data import models
    from ahriuwu_core.data.layout import DataLayout

    instance, resources, data_root, *_ = graph
    layout = DataLayout(data_root)
    current, current_sha = models.current(layout, stage)
    manifest = json.loads((data_root / "manifest.json").read_text())
    ckpt = torch.load(current, map_location="cpu", weights_only=False)
    assert ckpt["extra"]["train_videos"] == manifest["train"]  # what the model recorded it learnt from
    ckpt["extra"]["train_videos"] = manifest["train"] + manifest["test"][:1]
    torch.save(ckpt, tmp_path / "leaky.pt")
    leaky, leaky_sha = models.publish(layout, stage, tmp_path / "leaky.pt")
    models.publish(layout, stage, current)  # the current one again; the leaky one stays in models/
    assert models.current(layout, stage) == (current, current_sha) and leaky.exists()

    from dagster import AssetSelection, materialize

    from pipeline.definitions import ALL_ASSETS

    config = {"ops": {"evaluation": {"config": {f"{stage}_model": leaky_sha[:12]}}}}
    result = materialize(
        ALL_ASSETS,
        selection=AssetSelection.assets("evaluation"),
        instance=instance,
        resources=resources,
        run_config=config,
        raise_on_error=False,
    )
    assert not result.success  # a failed blocking check of ERROR severity fails its step
    passed, md = recorded(instance, "evaluation", "split_disjoint")
    assert not passed and manifest["test"][0] in str(md) and md["model"] == called, md
    status = latest_metadata(instance, "evaluation")["status"]
    assert status.startswith(f"not evaluated: the {called} {leaky.name} trained on test videos"), status
    assert models.current(layout, stage) == (current, current_sha)


def test_a_second_run_on_unchanged_inputs_trains_no_step_and_changes_no_model(graph):
    """`make demo` again with nothing changed: both trainers find their finished run folders, train no step and
    write the same bytes, so the models' data versions stay and nothing downstream goes stale."""
    instance, resources, data_root, *_ = graph
    from pipeline.demo import run_all

    def versions():
        out = {}
        for stage in ("tokenizer", "dynamics"):
            [record] = instance.fetch_materializations(AssetKey(stage), limit=1).records
            out[stage] = record.asset_materialization.tags["dagster/data_version"]
        return out

    def logged_steps():
        runs = {s: (data_root / s / "runs").glob("*/train_log.jsonl") for s in ("tokenizer", "dynamics")}
        return {s: sum(len(p.read_text().splitlines()) for p in paths) for s, paths in runs.items()}

    steps = logged_steps()
    before = versions()
    outcome = run_all(instance, resources, log=lambda m: None)
    assert outcome["tokenizer"] and outcome["dynamics"], outcome
    assert versions() == before
    assert logged_steps() == steps  # not one training step logged
