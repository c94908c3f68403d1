"""Shared pieces of the dynamics tests: one torch thread and a tiny world model."""
import pytest
import torch

from ahriuwu_core.dynamics.model import DynamicsConfig, WorldModel


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: extra threads only thrash on the shared CPU. Restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = dict(num_tokens=8, token_dim=4, pack=2, d_model=32, n_layers=4, n_heads=4, n_kv_heads=2, time_every=2,
            n_registers=2, k_max=8)


def tiny(**over):
    torch.manual_seed(0)
    return WorldModel(DynamicsConfig(**{**TINY, **over}))
