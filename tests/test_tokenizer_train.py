import json
import os
import signal

import numpy as np
import pytest
import torch

from ahriuwu_core.data.frames import open_frames
from ahriuwu_core.images.metrics import psnr
from ahriuwu_core.tokenizer import (
    FrameWindowSampler,
    TokenizerTrainConfig,
    load_tokenizer,
    train_tokenizer,
)
from ahriuwu_core.tokenizer.quality import collapse_check, heldout_metrics
from ahriuwu_core.training.optim import OptimConfig

from ._tensorboard import scalars
from ._tokenizer_stores import make_frames_store

TINY_CNN = dict(image_size=32, channels=(8, 16), latent_dim=4, groups=4)
TINY_TF = dict(image_size=32, patch_size=8, num_latents=4, latent_dim=6, d_model=32, n_layers=1, n_heads=2)


def _cfg(kind="cnn", steps=4, **kw):
    base = dict(
        kind=kind,
        model=TINY_CNN if kind == "cnn" else TINY_TF,
        steps=steps,
        batch_size=4,
        frames_per_sample=2,
        lpips_weight=0.2,
        lpips_pretrained=False,
        lpips_frames=3,
        optim=OptimConfig(lr=3e-3, warmup_steps=1),
        log_every=1,
        ckpt_every=2,
        eval_frames=6,
        mask_max=0.9,
        mask_warmup_steps=2,
    )
    base.update(kw)
    return TokenizerTrainConfig(**base)


@pytest.fixture()
def stores(tmp_path):
    train = [make_frames_store(tmp_path / f"v{i}.zarr", seed=i, size=32) for i in range(2)]
    held = [make_frames_store(tmp_path / "h.zarr", seed=5, size=32)]
    return train, held


def test_train_writes_checkpoint_log_and_metrics(tmp_path, stores):
    train, held = stores
    lines = []
    res = train_tokenizer(train, held, _cfg("transformer"), tmp_path / "out", log=lines.append)
    assert res["completed"] and res["steps"] == 4 and res["params"] > 0
    # The training curves, also as TensorBoard scalars: the numbers of train_log.jsonl at the same steps.
    logged = [json.loads(line) for line in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    curves = scalars(tmp_path / "out")
    assert {"train/loss", "train/mse", "train/lr", "train/steps_per_s"} <= set(curves)
    assert curves["train/loss"] == [(r["step"], pytest.approx(r["loss"])) for r in logged]
    assert [s for s, _ in curves["train/loss"]] == [1, 2, 3, 4]
    assert os.path.isfile(res["checkpoint"]) and res["checkpoint"].endswith("tokenizer.pt")
    for key in ("heldout_psnr", "heldout_ssim", "train_seconds", "train_frames_per_s", "collapse_passed"):
        assert key in res
    # The reported figures are the saved model's: recompute them from the checkpoint and the held-out store.
    tok = load_tokenizer(res["checkpoint"])
    store = open_frames(held[0])
    frames = np.asarray(store["frames"])
    hud = np.asarray(store["hud_mask"][:]) if "hud_mask" in store else None
    idx = np.unique(np.linspace(0, len(frames) - 1, 6).round().astype(int))  # eval_frames=6, one store
    again = heldout_metrics(tok, frames[idx], hud, lpips=False)
    assert res["heldout_psnr"] == pytest.approx(float(np.mean(again["psnr"])), abs=1e-3)
    passed, _ = collapse_check(tok, frames[idx])
    assert res["collapse_passed"] is passed
    recs = [json.loads(line) for line in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2, 3, 4] and "lpips" in recs[0] and "mse" in recs[0]
    assert recs[0]["mask"] == pytest.approx(0.9 * 0.5) and recs[3]["mask"] == pytest.approx(0.9)
    assert any("ETA" in line for line in lines)
    tok = load_tokenizer(res["checkpoint"])
    assert not tok.training and tok.encode(torch.rand(1, 1, 3, 32, 32)).shape == (1, 1, 4, 6)


PCA_CNN = dict(
    image_size=32, channels=(8,), patch=2, mid_channels=16, mid_blocks=1, latent_dim=8, groups=4, linear_skip=True
)


def test_stop_and_resume_matches_straight_run(tmp_path, stores):
    """Also covers the PCA init of the CNN's linear path (done before resume, its own RNG)."""
    train, held = stores
    kw = dict(model=PCA_CNN, pca_init_frames=16)
    lines = []
    straight = train_tokenizer(train, [], _cfg(**kw), tmp_path / "a", evaluate=False, log=lines.append)
    assert any("PCA init" in line for line in lines)

    def stop_at_2(line):  # SIGUSR1 during step 2 -> stop after it, last.pt written
        if "step 2/4" in line:
            os.kill(os.getpid(), signal.SIGUSR1)

    first = train_tokenizer(train, [], _cfg(**kw), tmp_path / "b", log=stop_at_2)
    assert not first["completed"] and first["steps"] == 2
    assert not (tmp_path / "b" / "tokenizer.pt").exists()
    resumed = train_tokenizer(train, [], _cfg(**kw), tmp_path / "b", evaluate=False)
    assert resumed["completed"] and resumed["steps"] == 4
    a = torch.load(straight["checkpoint"], weights_only=False)["model"]
    b = torch.load(resumed["checkpoint"], weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sampler_windows_and_errors(tmp_path, stores):
    train, _ = stores
    s = FrameWindowSampler(train, T=3, image_size=32, seed=0)
    frames, game = s.sample(5)
    assert frames.shape == (5, 3, 3, 32, 32) and game.shape == (5, 1, 1, 32, 32)
    assert float(game.min()) == 0.0 and float(game.mean()) == pytest.approx(1 - 15 / 1024)
    state = s.state()
    again = s.sample(2)[0]
    s.set_state(state)
    assert torch.equal(s.sample(2)[0], again)
    with pytest.raises(FileNotFoundError, match="missing.zarr"):
        FrameWindowSampler([tmp_path / "missing.zarr"], T=1, image_size=32)
    with pytest.raises(ValueError, match="v0.zarr"):
        FrameWindowSampler(train, T=1, image_size=64)


@pytest.mark.usefixtures("one_thread")
def test_tiny_cnn_learns(tmp_path):
    """Training adds to its start: on held-out frames the trained model beats the model it started from (step 0,
    its linear path PCA-initialised), which alone beats the training mean image by 8 dB here; and it has not
    collapsed."""
    # Held-out frames between the training videos' (each video has its own background tint): measured, training
    # adds 1.9 dB over the start here, and under 1 dB on a held-out tint outside the training ones.
    train = [make_frames_store(tmp_path / f"v{i}.zarr", seed=i, size=32) for i in (0, 1, 3, 4)]
    held = [make_frames_store(tmp_path / "h.zarr", seed=2, size=32)]
    # The demo preset's CNN layout at toy size: ResNet path + PCA-initialised linear path. (The plain TINY_CNN
    # stays at the mean image for 200 steps on these frames: its collapse check fails.)
    cfg = dict(
        lpips_weight=0.0,
        batch_size=8,
        frames_per_sample=1,
        ckpt_every=1000,
        eval_frames=12,
        optim=OptimConfig(lr=3e-3, warmup_steps=5),
        model=PCA_CNN,
        pca_init_frames=16,
    )
    start = train_tokenizer(train, held, _cfg(steps=0, **cfg), tmp_path / "start", log=lambda s: None)
    res = train_tokenizer(train, held, _cfg(steps=120, **cfg), tmp_path / "o", log=lambda s: None)
    assert res["heldout_psnr"] > start["heldout_psnr"] + 1.0, (res["heldout_psnr"], start["heldout_psnr"])
    recs = [json.loads(line) for line in (tmp_path / "o" / "train_log.jsonl").read_text().splitlines()]
    assert recs[-1]["mse"] < 0.7 * recs[0]["mse"]  # and on its training batches
    mean_image = np.concatenate([np.asarray(open_frames(p)["frames"]) for p in train]).mean(0)
    heldout = np.asarray(open_frames(held[0])["frames"])
    mean_psnr = float(np.mean(psnr(np.broadcast_to(mean_image.round().astype(np.uint8), heldout.shape), heldout)))
    assert res["heldout_psnr"] > mean_psnr + 2.0, (res["heldout_psnr"], mean_psnr)
    assert res["collapse_passed"] is True


def test_trainer_stops_when_its_parent_is_killed_and_holds_its_folder(tmp_path, stores):
    import dataclasses
    import socket
    import subprocess
    import sys

    from ahriuwu_core.data.files import LockHeld
    from ahriuwu_core.training.checkpoint import read_checkpoint

    from ._trainers import kill_parent_of

    train, _ = stores
    out = tmp_path / "run"
    cfg = dataclasses.asdict(_cfg(steps=100000, ckpt_every=1000))
    script = (
        "import json, sys; from ahriuwu_core.tokenizer import TokenizerTrainConfig, train_tokenizer; "
        "r = train_tokenizer(json.loads(sys.argv[2]), [], TokenizerTrainConfig(**json.loads(sys.argv[1])), "
        "sys.argv[3], evaluate=False); print(json.dumps(r))"
    )
    log = tmp_path / "trainer.out"
    seen = kill_parent_of(
        [sys.executable, "-c", script, json.dumps(cfg), json.dumps([str(p) for p in train]), str(out)], out, log
    )
    text = log.read_text()
    assert "parent process" in text and "Traceback" not in text, text[-2000:]
    result = json.loads(text.splitlines()[-1])
    assert result["stopped_by"] == "parent_died" and not result["completed"]
    # It checkpointed on the way out, long before its first boundary (step 1000), and released its folder.
    assert read_checkpoint(out / "last.pt")["step"] == result["steps"] >= seen
    assert not (out / "trainer.lock").exists() and not (out / "tokenizer.pt").exists()

    # A live owner named in the lock: a second trainer on the folder refuses at once, and leaves the lock alone.
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (out / "trainer.lock").write_text(f"{sleeper.pid} {socket.gethostname()}\n")
        with pytest.raises(LockHeld, match=f"run folder {out} is in use by process {sleeper.pid}"):
            train_tokenizer(train, [], _cfg(steps=2), out, evaluate=False, log=lambda s: None)
        assert (out / "trainer.lock").read_text().split()[0] == str(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()
    # Now its owner is dead: the next trainer breaks the lock, says so, resumes and releases its own.
    lines = []
    res = train_tokenizer(train, [], _cfg(steps=result["steps"] + 1), out, evaluate=False, log=lines.append)
    assert res["completed"] and res["stopped_by"] is None and not (out / "trainer.lock").exists()
    assert any(f"removed stale lock {out / 'trainer.lock'} of process {sleeper.pid}" in s for s in lines), lines
    assert any(f"resumed tokenizer training from {out / 'last.pt'} at step {result['steps']}" in s for s in lines)


@pytest.mark.parametrize("limit", [0.0, 1e-9])
def test_a_rerun_of_a_finished_run_trains_nothing_and_writes_the_same_bytes(tmp_path, stores, limit):
    """Whether the run ended at its last step or at max_train_seconds: a rerun on the same folder trains no step
    and writes tokenizer.pt byte for byte as before, so its data version (the file's sha256) does not change."""
    train, held = stores
    out = tmp_path / "out"
    first = train_tokenizer(train, held, _cfg(max_train_seconds=limit), out, log=lambda m: None)
    before = (out / "tokenizer.pt").read_bytes()
    assert first["completed"] and first["steps"] == (1 if limit else 4)
    lines = []
    again = train_tokenizer(train, held, _cfg(max_train_seconds=limit), out, log=lines.append)
    assert again["completed"] and again["steps"] == first["steps"]
    assert any("no step to train" in line for line in lines), lines
    assert (out / "tokenizer.pt").read_bytes() == before
    assert again["heldout_psnr"] == pytest.approx(first["heldout_psnr"])
