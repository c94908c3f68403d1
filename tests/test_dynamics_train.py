"""Dynamics training: latent windows, mixed labels, resume, non-finite handling, signals, SIGKILL, DDP."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from ahriuwu_core.cli.train_dynamics import config_from_json
from ahriuwu_core.dynamics import train as train_mod
from ahriuwu_core.dynamics.config import DynamicsConfig
from ahriuwu_core.dynamics.data import LatentWindows, write_latent_store
from ahriuwu_core.dynamics.load import load_world_model
from ahriuwu_core.dynamics.model import WorldModel
from ahriuwu_core.dynamics.train import NonFiniteLossError, train_dynamics
from ahriuwu_core.dynamics.train_config import DynamicsTrainConfig
from ahriuwu_core.training.checkpoint import read_checkpoint
from ahriuwu_core.training.optim import OptimConfig, WeightAverage
from tests._tensorboard import event_files, scalars
from tests._trainers import kill_parent_of, wait_for_step

pytestmark = pytest.mark.usefixtures("one_thread")


REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = dict(pack=2, d_model=16, n_layers=2, n_heads=2, n_kv_heads=1, time_every=2, n_registers=1, k_max=4)


def make_stores(root: Path, n=2, frames=24, labelled=(True, False)):
    rng = np.random.default_rng(0)
    stores = []
    for i in range(n):
        lat = np.tanh(rng.normal(size=(frames, 4, 3))).astype(np.float16)
        if labelled[i % len(labelled)]:
            acts = np.stack([rng.integers(0, 9, frames), rng.integers(0, 5, frames)], 1)
            stores.append(write_latent_store(root / f"v{i}.zarr", lat, acts, np.ones(frames, bool)))
        else:  # an unlabelled video without action arrays at all
            stores.append(write_latent_store(root / f"v{i}.zarr", lat))
    return stores


def tiny_cfg(**over):
    base = dict(
        model=TINY_MODEL,
        steps=6,
        batch_size=2,
        seq_len=4,
        long_seq_len=8,
        long_ratio=0.5,
        stride=2,
        optim=OptimConfig(lr=1e-3, warmup_steps=2),
        ckpt_every=2,
        log_every=1,
        seed=0,
    )
    return DynamicsTrainConfig(**{**base, **over})


def test_windows_stride_sharding_and_mixed_labels(tmp_path):
    stores = make_stores(tmp_path)
    data = LatentWindows(stores, stride=4)
    assert data.windows(8).tolist() == [[0, s] for s in (0, 4, 8, 12, 16)] + [[1, s] for s in (0, 4, 8, 12, 16)]
    # Two ranks with batch 3 draw between them exactly the global batch of 6 one process draws.
    ranks = [LatentWindows(stores, stride=4, rank=r, world_size=2).batch(3, 5, seed=0, step=3) for r in (0, 1)]
    b = data.batch(6, 5, seed=0, step=3)
    for key in b:
        assert torch.equal(torch.cat([r[key] for r in ranks]), b[key])
    assert not torch.equal(ranks[0]["latents"], ranks[1]["latents"])
    assert torch.equal(data.batch(2, 5, seed=0, step=3, first=4)["latents"], b["latents"][4:])
    assert b["latents"].shape == (6, 5, 4, 3) and b["actions"].shape == (6, 5, 2)
    assert b["has_actions"].dtype == torch.bool
    assert b["has_actions"].any() and not b["has_actions"].all()  # labelled + unlabelled in one batch
    again = data.batch(6, 5, seed=0, step=3)
    assert torch.equal(b["latents"], again["latents"])  # a pure function of (seed, step, example)


def test_bad_stores_raise_naming_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.zarr"):
        LatentWindows([tmp_path / "missing.zarr"])
    g = zarr.open_group(str(tmp_path / "empty.zarr"), mode="w")
    g.attrs["x"] = 1
    with pytest.raises(ValueError, match="empty.zarr.*latents"):
        LatentWindows([tmp_path / "empty.zarr"])
    a = write_latent_store(tmp_path / "a.zarr", np.zeros((10, 4, 3)))
    b = write_latent_store(tmp_path / "b.zarr", np.zeros((10, 4, 5)))
    with pytest.raises(ValueError, match="b.zarr"):
        LatentWindows([a, b])
    with pytest.raises(ValueError, match="windows of 50 frames"):
        LatentWindows([a]).windows(50)


def test_batch_shape_alternates_at_ratio():
    cfg = tiny_cfg(batch_size=8, seq_len=4, long_seq_len=16, long_ratio=0.25)
    shapes = [cfg.batch_shape(s) for s in range(1, 13)]
    assert shapes.count((2, 16)) == 3 and shapes.count((8, 4)) == 9
    assert tiny_cfg(long_ratio=0.0).batch_shape(1) == (2, 4)


def test_train_writes_outputs_and_resumes(tmp_path):
    stores = make_stores(tmp_path)
    out = tmp_path / "run"
    reports = []
    r = train_dynamics(stores, tiny_cfg(steps=4), out, log=lambda s: None, report=reports.append)
    assert r["completed"] and r["steps"] == 4 and r["resumed_from_step"] == 0
    assert np.isfinite(r["loss_last"]) and r["params"] > 0 and r["tokens_per_s"] > 0
    assert json.loads((out / "result.json").read_text())["steps"] == 4
    assert reports[-1]["steps"] == 4 and reports[0]["step"] == 1
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 4
    logged = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    curves = scalars(out)
    assert {"train/loss", "train/lr", "train/frames_per_s"} <= set(curves)
    assert curves["train/loss"] == [(r["step"], pytest.approx(r["loss"])) for r in logged]
    model = load_world_model(out / "dynamics.pt")
    assert model.cfg.num_tokens == 4 and model.cfg.token_dim == 3  # shape taken from the data
    data = np.concatenate([zarr.open_group(str(s))["latents"][:] for s in stores]).astype(np.float32)
    # per-channel standardization stats come from the training data (a 256-frame sample)
    assert np.allclose(model.latent_mean.numpy(), data.mean((0, 1)), atol=0.1)
    assert np.allclose(model.latent_std.numpy(), data.std((0, 1)), rtol=0.2)
    r2 = train_dynamics(stores, tiny_cfg(steps=6), out, log=lambda s: None)
    assert r2["resumed_from_step"] == 4 and r2["steps"] == 6 and r2["completed"]
    # The resumed run adds its own event file; together they hold every step once.
    assert len(event_files(out)) == 2
    assert sorted(step for step, _ in scalars(out)["train/loss"]) == [1, 2, 3, 4, 5, 6]  # each once, files in any order


@pytest.mark.parametrize(
    "options",
    [
        {},
        {
            "ema_decay": 0.9,
            "prior_lr_scale": 5.0,
            "prior_fit_windows": 8,
            "loss_weight": "flat",
            "model": {**TINY_MODEL, "persistence_prior": True, "prior_kernel": 3, "precondition": True},
        },
    ],
)
def test_stopped_and_resumed_run_has_the_weights_of_a_straight_run(tmp_path, options):
    stores = make_stores(tmp_path)
    said = []
    straight = train_dynamics(stores, tiny_cfg(steps=6, **options), tmp_path / "a", log=said.append)
    assert any("least-squares fit on 8 windows" in line for line in said) == bool(options)

    def stop_after_3(rec):  # SIGUSR1 during step 3 -> stops after it with last.pt written
        if rec.get("step") == 3 and "loss" in rec:
            os.kill(os.getpid(), signal.SIGUSR1)

    first = train_dynamics(
        stores, tiny_cfg(steps=6, **options), tmp_path / "b", log=lambda s: None, report=stop_after_3
    )
    assert not first["completed"] and first["steps"] == 3
    resumed = train_dynamics(stores, tiny_cfg(steps=6, **options), tmp_path / "b", log=lambda s: None)
    assert resumed["completed"] and resumed["resumed_from_step"] == 3
    a, b = read_checkpoint(straight["checkpoint"])["model"], read_checkpoint(resumed["checkpoint"])["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert ("change_var" in a) == bool(options)  # measured on the fitted prior's error before step 1, then kept
    if options:
        assert any("preconditioning: the prior's error variance" in line for line in said)
        assert not torch.equal(
            a["change_var"], torch.ones_like(a["change_var"])
        )  # the weight average is what inference gets, from the final model and from a training checkpoint
        last = read_checkpoint(tmp_path / "b" / "last.pt")
        average = WeightAverage.from_state(last["extra"]["ema"]).averaged()
        assert all(torch.equal(a[k], average[k]) for k in average)
        assert not all(torch.equal(last["model"][k], average[k]) for k in average)
        loaded = load_world_model(tmp_path / "b" / "last.pt").state_dict()
        assert all(torch.equal(loaded[k], average[k]) for k in average)


def test_nonfinite_losses_are_skipped_then_fatal(tmp_path, monkeypatch):
    stores = make_stores(tmp_path)
    real = train_mod.shortcut_forcing_loss
    calls = {"n": 0}

    def sometimes_nan(*a, **k):
        calls["n"] += 1
        loss, stats = real(*a, **k)
        return (loss * float("nan"), stats) if calls["n"] in (2, 3) else (loss, stats)

    monkeypatch.setattr(train_mod, "shortcut_forcing_loss", sometimes_nan)
    r = train_dynamics(stores, tiny_cfg(steps=5, max_nonfinite=3), tmp_path / "a", log=lambda s: None)
    assert r["completed"] and r["nonfinite_skipped"] == 2

    def always_inf(*a, **k):
        loss, stats = real(*a, **k)
        return loss * float("inf"), stats

    monkeypatch.setattr(train_mod, "shortcut_forcing_loss", always_inf)
    with pytest.raises(NonFiniteLossError, match="3 consecutive non-finite"):
        train_dynamics(stores, tiny_cfg(steps=10, max_nonfinite=3), tmp_path / "b", log=lambda s: None)
    assert not (tmp_path / "b" / "dynamics.pt").exists()
    ckpt = read_checkpoint(tmp_path / "b" / "last.pt")  # the step-2 boundary, written before any update
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


def run_cli(config: dict, out: Path, **popen):
    return subprocess.Popen(
        [sys.executable, "-m", "ahriuwu_core.cli.train_dynamics", "--config", json.dumps(config), "--out", str(out)],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        **popen,
    )


def cli_config(stores, **over):
    return {
        "train_stores": [str(s) for s in stores],
        "device": "cpu",
        "model": TINY_MODEL,
        "steps": 400,
        "batch_size": 2,
        "seq_len": 4,
        "long_seq_len": 8,
        "long_ratio": 0.5,
        "stride": 2,
        "optim": {"lr": 1e-3, "warmup_steps": 2},
        "ckpt_every": 5,
        "log_every": 1,
        **over,
    }


def test_sigkill_then_rerun_resumes_losing_at_most_one_interval(tmp_path):
    stores = make_stores(tmp_path)
    out = tmp_path / "run"
    cfg = cli_config(stores)
    proc = run_cli(cfg, out)
    wait_for_step(out, 12, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.loads((out / "train_log.jsonl").read_text().splitlines()[-1])["step"]
    on_disk = read_checkpoint(out / "last.pt")
    # A rerun with nothing left to train publishes exactly the weights it resumed: those on disk.
    proc = run_cli({**cfg, "steps": on_disk["step"]}, out)
    assert proc.wait(timeout=120) == 0, proc.stdout.read().decode()
    resumed = read_checkpoint(out / "dynamics.pt")["model"]
    assert all(torch.equal(resumed[k], v) for k, v in on_disk["model"].items())
    cfg["steps"] = killed_at + 3
    proc = run_cli(cfg, out)
    assert proc.wait(timeout=120) == 0, proc.stdout.read().decode()
    result = json.loads((out / "result.json").read_text())
    assert result["completed"] and result["steps"] == killed_at + 3
    assert killed_at - 5 <= result["resumed_from_step"] <= killed_at
    assert result["resumed_from_step"] % 5 == 0


@pytest.mark.parametrize("sig,boundary", [(signal.SIGTERM, True), (signal.SIGUSR1, False)])
def test_signals_checkpoint_and_exit_cleanly(tmp_path, sig, boundary):
    stores = make_stores(tmp_path)
    out = tmp_path / "run"
    proc = run_cli(cli_config(stores, ckpt_every=1000 if not boundary else 7), out)
    wait_for_step(out, 3, proc)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == 0
    result = json.loads((out / "result.json").read_text())
    assert not result["completed"] and result["steps"] < 400
    saved = read_checkpoint(out / "last.pt")["step"]
    assert saved == result["steps"]
    if boundary:
        assert saved % 7 == 0  # SIGTERM waits for the next checkpoint boundary
    else:
        assert saved < 1000  # SIGUSR1 stops after the current step, no boundary needed
    assert not (out / "dynamics.pt").exists()


def test_config_from_json_merges_preset():
    cfg, stores, device = config_from_json(
        {"preset": "demo", "train_stores": ["a.zarr"], "steps": 7, "model": {"d_model": 64}, "optim": {"lr": 0.1}}
    )
    assert cfg.steps == 7 and cfg.model.d_model == 64 and cfg.model.pack == 4
    assert cfg.optim.lr == 0.1 and cfg.optim.warmup_steps == 30 and stores == [Path("a.zarr")]
    with pytest.raises(ValueError, match="unknown dynamics preset"):
        config_from_json({"preset": "nope", "train_stores": ["a"]})
    with pytest.raises(ValueError, match="unknown fields"):
        config_from_json({"train_stores": ["a"], "stepz": 3})


@pytest.mark.parametrize(
    "options",
    [
        {},
        {
            "ema_decay": 0.9,
            "prior_fit_windows": 8,
            "model": {**TINY_MODEL, "persistence_prior": True, "prior_kernel": 3},
        },
    ],
)
def test_torchrun_two_processes_match_one_process_on_the_global_batch(tmp_path, options):
    """2 ranks x batch 2 under torchrun (gloo) end with the weights of 1 process x batch 4 (same seed, data);
    also with the action-kernel prior (its own loss term is reduced over ranks too, its least-squares start is the
    same on every rank) and the weight average."""
    stores = make_stores(tmp_path, n=2)
    out = tmp_path / "ddp"
    cfg = cli_config(stores, steps=4, ckpt_every=2, **options)  # batch 2 per rank; steps 2 and 4 are long batches
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "ahriuwu_core.cli.train_dynamics",
        "--config",
        json.dumps(cfg),
        "--out",
        str(out),
    ]
    proc = subprocess.run(
        cmd, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _assert_matches_one_process(out, cfg, stores, tmp_path / "one")


def test_two_nodes_on_loopback_match_one_process(tmp_path):
    """The cluster route as the dynamics asset launches it: `pipeline.cluster.dynamics_command` with a c10d
    rendezvous on 127.0.0.1 for 2 nodes x 1 process, both running the pipeline's entry point
    (`pipeline.dynamics_pipes`) in one Dagster Pipes session, as every node of a cluster job gets the same
    environment. Whichever node is rank 0 reports to Dagster; the model is the one 1 process trains on the
    global batch."""
    from dagster import (
        AssetExecutionContext,
        PipesTempFileContextInjector,
        PipesTempFileMessageReader,
        asset,
        materialize,
        open_pipes_session,
    )

    from ahriuwu_core.dynamics.train_config import DynamicsTrainConfig
    from pipeline.cluster import dynamics_command
    from tests._servers import free_port

    stores = make_stores(tmp_path, n=2)
    out = tmp_path / "nodes"
    out.mkdir()
    cfg = cli_config(stores, steps=4, ckpt_every=2)
    train_cfg = DynamicsTrainConfig.from_dict({k: v for k, v in cfg.items() if k not in ("train_stores", "device")})
    spec = out / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "preset": "test",
                "config": dataclasses.asdict(train_cfg),
                "out_dir": str(out),
                "train_stores": cfg["train_stores"],
                "device": "cpu",
            }
        )
    )
    command = dynamics_command(spec, 1, sys.executable, rdzv_endpoint=f"127.0.0.1:{free_port()}", nnodes=2)
    outputs = []

    @asset(key="dynamics")
    def on_two_nodes(context: AssetExecutionContext):
        with open_pipes_session(context, PipesTempFileContextInjector(), PipesTempFileMessageReader()) as session:
            env = {**os.environ, "OMP_NUM_THREADS": "1", **session.get_bootstrap_env_vars()}
            nodes = [
                subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                for _ in range(2)
            ]
            try:
                outputs.extend(node.communicate(timeout=240)[0].decode() for node in nodes)
            finally:
                for node in nodes:
                    node.kill()
            assert [node.returncode for node in nodes] == [0, 0], "\n".join(o[-3000:] for o in outputs)
        yield from session.get_results()

    result = materialize([on_two_nodes])
    assert result.success
    [mat] = result.asset_materializations_for_node("dynamics")
    assert mat.metadata["world_size"].value == 2 and mat.metadata["steps"].value == 4
    _assert_matches_one_process(out, cfg, stores, tmp_path / "one")


def _assert_matches_one_process(out, cfg, stores, one_dir):
    """The 2-rank run in `out` against 1 process on the same global batch (2 x cfg's batch_size)."""
    result = json.loads((out / "result.json").read_text())
    assert result["world_size"] == 2 and result["completed"] and result["steps"] == 4
    assert result["ranks_in_sync"] is True  # both ranks end with bit-identical weights (all-reduced over gloo)
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 4  # only rank 0 logs
    assert len(event_files(out)) == 1 and [s for s, _ in scalars(out)["train/loss"]] == [1, 2, 3, 4]
    ddp = load_world_model(out / "dynamics.pt").state_dict()

    one_cfg, _, _ = config_from_json({**cfg, "batch_size": 2 * cfg["batch_size"]})
    single = train_dynamics(stores, one_cfg, one_dir, log=lambda s: None)
    one = load_world_model(single["checkpoint"]).state_dict()
    torch.manual_seed(0)  # the trainer's init (seed 0), to size the updates the tolerance is measured against
    init = WorldModel(DynamicsConfig(**single["model_config"])).state_dict()
    moved = max(float((one[k] - init[k]).abs().max()) for k in init if k not in ("latent_mean", "latent_std"))
    diff = max(float((one[k] - ddp[k]).abs().max()) for k in one)
    # Only the order of float additions differs (gradient all-reduce, per-rank loss sums): the gap is about one
    # float32 ulp of the weights, ~2e-5 of how far training moved them. A rank reusing another rank's examples,
    # or per-rank loss means, leave a gap larger than the movement itself.
    print(f"max |w_1proc - w_ddp| = {diff:.3g}, max |w - w_init| = {moved:.3g}")
    assert moved > 1e-3
    assert diff <= 1e-3 * moved
    # The logged losses are global-batch values, so they agree too.
    logs = [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    ref = [json.loads(line)["loss"] for line in (one_dir / "train_log.jsonl").read_text().splitlines()]
    print(f"max relative loss gap = {max(abs(x - y) / y for x, y in zip(logs, ref)):.3g}")
    assert np.allclose(logs, ref, rtol=1e-5, atol=0)


def test_time_limit_stops_with_a_usable_model(tmp_path):
    stores = make_stores(tmp_path)
    r = train_dynamics(stores, tiny_cfg(steps=50, time_limit_s=1e-9), tmp_path / "run", log=lambda s: None)
    assert r["stopped_by"] == "time_limit" and r["steps"] == 1 and not r["completed"]
    assert read_checkpoint(tmp_path / "run" / "last.pt")["step"] == 1
    load_world_model(r["checkpoint"])


def test_trainer_stops_when_its_parent_is_killed(tmp_path):
    stores = make_stores(tmp_path)
    out = tmp_path / "run"
    trainer_log = tmp_path / "trainer.out"
    cmd = [
        sys.executable,
        "-m",
        "ahriuwu_core.cli.train_dynamics",
        "--config",
        json.dumps(cli_config(stores, steps=100000, ckpt_every=1000)),
        "--out",
        str(out),
    ]
    seen = kill_parent_of(cmd, out, trainer_log)
    text = trainer_log.read_text()
    assert "parent process" in text, text[-2000:]
    result = json.loads((out / "result.json").read_text())
    assert result["stopped_by"] == "parent_died" and not result["completed"]
    # It checkpointed on the way out, long before its first boundary (step 1000).
    assert read_checkpoint(out / "last.pt")["step"] == result["steps"] >= seen
    assert not (out / "trainer.lock").exists()


def test_one_trainer_per_run_folder_and_stale_locks_are_broken(tmp_path):
    from ahriuwu_core.data.files import LockHeld

    stores = make_stores(tmp_path)
    out = tmp_path / "run"
    first = run_cli(cli_config(stores, steps=100000, ckpt_every=1000), out)
    try:
        wait_for_step(out, 1, first)
        second = run_cli(cli_config(stores, steps=3), out)
        assert second.wait(timeout=120) != 0
        text = second.stdout.read().decode()
        assert "LockHeld" in text and f"run folder {out} is in use by process {first.pid}" in text, text[-2000:]
        assert first.poll() is None  # the owner trains on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # SIGKILL left the lock behind, naming a dead pid: the next trainer breaks it, says so, and releases its own.
    assert (out / "trainer.lock").read_text().split()[0] == str(first.pid)
    lines = []
    r = train_dynamics(stores, tiny_cfg(steps=2), tmp_path / "other", log=lines.append)
    assert r["completed"] and not (tmp_path / "other" / "trainer.lock").exists()
    lines.clear()
    r = train_dynamics(stores, tiny_cfg(steps=2), out, log=lines.append)
    assert r["completed"]
    assert any(f"removed stale lock {out / 'trainer.lock'} of process {first.pid}" in s for s in lines), lines
    assert not (out / "trainer.lock").exists()
    # A live owner in this process's view: a real sleeping process named in the lock.
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (out / "trainer.lock").write_text(f"{sleeper.pid} {__import__('socket').gethostname()}\n")
        with pytest.raises(LockHeld, match=f"{out} is in use by process {sleeper.pid}"):
            train_dynamics(stores, tiny_cfg(steps=2), out, log=lambda s: None)
        assert (out / "trainer.lock").read_text().split()[0] == str(sleeper.pid)  # not taken over
    finally:
        sleeper.kill()
        sleeper.wait()


def test_damaged_last_checkpoint_falls_back_to_the_previous_one(tmp_path):
    stores = make_stores(tmp_path)
    out = tmp_path / "run"
    train_dynamics(stores, tiny_cfg(steps=4), out, log=lambda s: None)  # boundaries at 2 and 4
    assert read_checkpoint(out / "last.pt")["step"] == 4 and read_checkpoint(out / "last.prev.pt")["step"] == 2
    size = (out / "last.pt").stat().st_size
    with open(out / "last.pt", "r+b") as f:
        f.truncate(size // 2)
    lines = []
    r = train_dynamics(stores, tiny_cfg(steps=6), out, log=lines.append)
    assert any(f"cannot read checkpoint {out / 'last.pt'}" in s for s in lines), lines
    assert f"resumed dynamics training from {out / 'last.prev.pt'} at step 2" in lines
    assert r["completed"] and r["resumed_from_step"] == 2
    assert (out / "last.damaged.pt").stat().st_size == size // 2  # kept for inspection, out of the rotation
    assert read_checkpoint(out / "last.pt")["step"] == 6 and read_checkpoint(out / "last.prev.pt")["step"] == 4
    for name in ("last.pt", "last.prev.pt"):
        (out / name).write_bytes(b"not a checkpoint")
    lines.clear()
    r = train_dynamics(stores, tiny_cfg(steps=2), out, log=lines.append)
    assert r["completed"] and r["resumed_from_step"] == 0
    assert any("training starts from scratch" in s and str(out / "last.prev.pt") in s for s in lines), lines


def test_stores_over_the_memory_threshold_are_read_window_by_window(tmp_path, monkeypatch):
    from ahriuwu_core.dynamics import data as data_mod

    small = make_stores(tmp_path / "small")  # latents 24 x 4 x 3 float16: 576 bytes each
    big = make_stores(tmp_path / "big", n=1, frames=40)  # 960 bytes
    read = []  # whole arrays read
    real_read = data_mod.read_checked

    def spy(path, arr, selection=slice(None)):
        if selection == slice(None):
            read.append((Path(path), arr.name))
        return real_read(path, arr, selection)

    monkeypatch.setattr(data_mod, "read_checked", spy)
    data = LatentWindows(small + big, stride=2, in_memory=True, in_memory_max_bytes=600)
    assert [v.in_memory for v in data.videos] == [True, True, False]
    assert isinstance(data.videos[2].latents, zarr.Array)
    assert (big[0], "/latents") not in read and (small[0], "/latents") in read, read  # never loaded whole
    whole = LatentWindows(small + big, stride=2, in_memory=True)
    for step in range(1, 6):
        a, b = data.batch(4, 8, 0, step), whole.batch(4, 8, 0, step)
        assert all(torch.equal(a[k], b[k]) for k in a)
    # Training reads the same numbers either way: the same weights, bit for bit.
    lines = []
    streamed = train_dynamics(small + big, tiny_cfg(steps=3, in_memory_max_bytes=0), tmp_path / "s", log=lines.append)
    loaded = train_dynamics(small + big, tiny_cfg(steps=3), tmp_path / "m", log=lambda s: None)
    assert any("3 videos (3 read from zarr window by window)" in s for s in lines), lines
    a, b = (load_world_model(r["checkpoint"]).state_dict() for r in (streamed, loaded))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("limit", [0.0, 1e-9])
def test_a_rerun_of_a_finished_run_trains_nothing_and_writes_the_same_bytes(tmp_path, limit):
    """Whether the run completed or stopped at its time limit: a rerun on the same folder trains no step and writes
    dynamics.pt byte for byte as before (its data version does not change)."""
    stores = make_stores(tmp_path)
    out = tmp_path / "run"
    first = train_dynamics(stores, tiny_cfg(steps=4, time_limit_s=limit), out, log=lambda s: None)
    before = (out / "dynamics.pt").read_bytes()
    assert first["steps"] == (1 if limit else 4)
    lines = []
    again = train_dynamics(stores, tiny_cfg(steps=4, time_limit_s=limit), out, log=lines.append)
    assert again["steps"] == first["steps"] and again["stopped_by"] == first["stopped_by"]
    assert any("no step to train" in line for line in lines), lines
    assert (out / "dynamics.pt").read_bytes() == before
