"""The world model learns: on toy latents with a strong action effect, a short training run lowers the loss,
beats copy-last-frame, and follows its actions (true actions beat shuffled ones by a wide margin)."""

import numpy as np
import pytest
import torch

from ahriuwu_core.dynamics.data import write_latent_store
from ahriuwu_core.dynamics.load import load_world_model
from ahriuwu_core.dynamics.sampler import rollout
from ahriuwu_core.dynamics.train import train_dynamics
from ahriuwu_core.dynamics.train_config import DynamicsTrainConfig
from ahriuwu_core.eval.action_control import shuffled_actions
from ahriuwu_core.testing.toy import make_toy_latents
from ahriuwu_core.training.optim import OptimConfig

pytestmark = pytest.mark.usefixtures("one_thread")

MODEL = dict(
    pack=4,
    d_model=64,
    n_layers=3,
    n_heads=4,
    n_kv_heads=2,
    time_every=1,
    n_registers=1,
    k_max=4,
    space_rope=True,
    persistence_prior=True,
    action_to_latents=True,
)


def _toy_store(path, seed, frames=240, hold=1):  # a new random move every frame: only the action tells where
    lat, act, has = make_toy_latents(frames, grid=8, dim=8, seed=seed, hold=hold)
    return write_latent_store(path, lat, act, has), (lat, act, has)


def test_short_training_beats_copy_last_and_follows_actions(tmp_path):
    stores = [_toy_store(tmp_path / f"train{i}.zarr", seed=i)[0] for i in range(3)]
    cfg = DynamicsTrainConfig(
        model=MODEL,
        steps=500,
        batch_size=8,
        seq_len=8,
        long_ratio=0.0,
        stride=1,
        single_image_fraction=0.0,
        context_prefix_prob=0.8,
        shortcut_fraction=0.25,
        optim=OptimConfig(lr=2e-3, warmup_steps=10),
        ckpt_every=1000,
        log_every=1000,
    )
    result = train_dynamics(stores, cfg, tmp_path / "run", log=lambda s: None)
    assert result["completed"] and result["loss_last"] < 0.5 * result["loss_first"]

    model = load_world_model(result["checkpoint"])
    _, (lat, act, has) = _toy_store(tmp_path / "heldout.zarr", seed=99, frames=200)
    C, H = 6, 3
    starts = range(0, 200 - C - H, 6)
    clips = torch.from_numpy(np.stack([lat[s : s + C + H] for s in starts]))
    acts = torch.from_numpy(np.stack([act[s : s + C + H] for s in starts]).astype(np.int64))
    labelled = torch.from_numpy(np.stack([has[s : s + C + H] for s in starts]))
    gen = torch.Generator().manual_seed(0)
    pred = rollout(model, clips[:, :C], acts, labelled, H, sampling_steps=4, context_noise=0.1, generator=gen)
    gen = torch.Generator().manual_seed(0)
    shuffled = rollout(
        model,
        clips[:, :C],
        shuffled_actions(acts, C, seed=0),
        labelled,
        H,
        sampling_steps=4,
        context_noise=0.1,
        generator=gen,
    )
    target = clips[:, C : C + 1]  # the first dreamed frame: later ones compound the first one's error
    mse = lambda a: float((a[:, :1] - target).pow(2).mean())  # noqa: E731
    copy_last = mse(clips[:, C - 1 : C])
    assert mse(pred) < 0.6 * copy_last, (mse(pred), copy_last)
    assert mse(shuffled) > 1.2 * mse(pred), (mse(shuffled), mse(pred))
