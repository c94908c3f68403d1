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
