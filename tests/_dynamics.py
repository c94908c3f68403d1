"""Shared pieces of the dynamics tests: a tiny world model (the one-thread fixture is in conftest.py)."""

import torch

from ahriuwu_core.dynamics.config import DynamicsConfig
from ahriuwu_core.dynamics.model import WorldModel

TINY = dict(
    num_tokens=8,
    token_dim=4,
    pack=2,
    d_model=32,
    n_layers=4,
    n_heads=4,
    n_kv_heads=2,
    time_every=2,
    n_registers=2,
    k_max=8,
)


def tiny(**over):
    torch.manual_seed(0)
    return WorldModel(DynamicsConfig(**{**TINY, **over}))
