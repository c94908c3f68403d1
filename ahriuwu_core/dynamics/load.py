"""A saved world model read back: the model (with its weight average, when training kept one) and the config it was
trained with."""

from __future__ import annotations

from ..training.checkpoint import read_checkpoint
from ..training.optim import WeightAverage
from .config import DynamicsConfig
from .model import WorldModel
from .train_config import DynamicsTrainConfig

KIND = "dynamics"  # the `kind` of a dynamics checkpoint


def load_world_model(path, device="cpu") -> WorldModel:
    return load_dynamics(path, device)[0]


def load_dynamics(path, device="cpu") -> tuple[WorldModel, DynamicsTrainConfig]:
    """The world model and the config it was trained with (rollouts must corrupt context as training did), from
    one read of the checkpoint."""
    ckpt = read_checkpoint(path)
    if ckpt.get("kind") not in (KIND, None) or not ckpt.get("config"):
        raise ValueError(f"{path} is not a dynamics checkpoint (kind={ckpt.get('kind')!r})")
    train_config = (ckpt.get("extra") or {}).get("train_config")
    if not isinstance(train_config, dict):
        raise ValueError(f"{path}: dynamics checkpoint without its training config (extra.train_config)")
    model = WorldModel(DynamicsConfig(**ckpt["config"]))
    state = dict(ckpt["model"])
    ema = (ckpt.get("extra") or {}).get("ema")
    if ema and ema.get("updates"):  # a training checkpoint with a weight average: inference uses the average
        averaged = WeightAverage.from_state(ema).averaged()
        state.update({k: v.to(state[k].dtype) for k, v in averaged.items() if k in state})
    # Checkpoints from before latent standardization lack the stats; their defaults (0, 1) are what they used.
    result = model.load_state_dict(state, strict=False)
    bad = sorted(set(result.missing_keys) - {"latent_mean", "latent_std"}) + list(result.unexpected_keys)
    if bad:
        raise ValueError(f"{path}: dynamics checkpoint does not match its config (keys {bad})")
    return model.to(device).eval(), DynamicsTrainConfig.from_dict(train_config)
