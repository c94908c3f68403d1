"""Fixtures shared by several test files. Helper code the tests import sits in tests/_*.py."""

import contextlib
import os

import pytest
import torch

# `make test` runs one worker per core (TEST_WORKERS): more torch threads in a worker, or in the processes its tests
# start, would only contend with the other workers.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# The code location's code versions include the deployment's settings (frame settings, source: see
# pipeline/assets/common.py), read from the environment when the definitions are first imported. Import them
# now, before any test changes the environment, so that the versions a test's in-process runs record match those
# of a `dg dev` the test starts with the default source (the tiny preset's frame settings are the demo's).
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


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    """`make test` runs the suite in xdist workers with `--dist loadgroup`. Each file is one unit of work, so its
    module fixtures are built once; every test that reads the trained demo model is one unit too, scheduled first
    with the Ray cluster's file, so that model is trained once and the long units start while the other workers
    take the rest."""
    for item in items:
        group = "demo_model" if "demo_model_root" in item.fixturenames else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
    # The two long units first (a stable sort: file order stays): the demo model's, then the Ray cluster's file,
    # so each takes a worker from the start while the other units fill in around them.
    items.sort(key=lambda item: 0 if "demo_model_root" in item.fixturenames else 1 if _on_ray(item) else 2)


def _on_ray(item) -> bool:
    return item.nodeid.split("::")[0] == "tests/test_ray.py"


@pytest.fixture(scope="session")
def demo_model_root(tmp_path_factory):
    """A data root as `make demo` leaves it: the demo preset's tokenizer and world model trained from scratch here
    on shorter schedules (tokenizer 100 steps, world model 30) and 15 s videos: about 3 minutes on one thread.
    Shared by the play tests and the benches' smoke runs. The steering test needs a model that follows its
    actions: this one, whose prior starts at its least-squares fit, steered the way it was told in 99.6-100% of
    frames in each of the four directions (bench/play.py --smoke --steer)."""
    from ahriuwu_core.testing.play_model import train_demo_model

    root = tmp_path_factory.mktemp("demo_model")
    train_demo_model(root, dynamics_steps=30, video_seconds=15.0, tokenizer_steps=100)
    return root
