"""Fixtures shared by several test files. Helper code the tests import sits in tests/_*.py."""

import contextlib

import pytest
import torch

# The code location's code versions include the deployment's settings (frame settings, source: see
# pipeline/assets/common.py), read from the environment when the definitions are first imported. Import them
# now, before any test changes the environment, so that the versions a test's in-process runs record match those
# of a `dagster dev` the test starts with the default source (the tiny preset's frame settings are the demo's).
import pipeline.definitions  # noqa: F401


@contextlib.contextmanager
def _single_torch_thread():
    """Tiny models: extra threads only thrash on the shared CPU. The previous count is restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    """One torch thread for a test; a file opts in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    with _single_torch_thread():
        yield


@pytest.fixture(scope="module")
def one_thread_module():
    """One torch thread for a whole file, for files whose module-scoped fixtures build models."""
    with _single_torch_thread():
        yield


@pytest.fixture(scope="session")
def demo_model_root(tmp_path_factory):
    """A data root as `make demo` leaves it: the demo preset's tokenizer and world model trained from scratch here,
    the world model on half the preset's schedule. Shared by the play tests and the benches' smoke runs. The
    steering test needs a model that has learnt its actions: 180 steps on a `make demo`'s latents steered the way
    they were told in 99-100% of frames in each of the four directions (bench/play.py --steer)."""
    from ahriuwu_core.testing.play_model import train_demo_model

    root = tmp_path_factory.mktemp("demo_model")
    train_demo_model(root, dynamics_steps=180)
    return root
