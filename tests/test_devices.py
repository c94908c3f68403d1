"""GPU leases on a CPU machine: the lease takes the number of devices as a parameter, and real processes hold,
wait for, release and die holding the lock files."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys

import pytest

from ahriuwu_core.training.devices import lease_device, leased_torch_device
from tests._instance import ROOT

# Holds a lease of argv[2] devices under argv[1]: prints its index, releases it when a line arrives on stdin.
HOLDER = """
import sys
from ahriuwu_core.training.devices import lease_device
with lease_device(sys.argv[1], int(sys.argv[2]), poll_s=0.05) as index:
    print(index, flush=True)
    sys.stdin.readline()
"""


def _holder(lock_dir, n) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_dir), str(n)],
        cwd=ROOT,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )


def _index(proc, timeout: float) -> int | None:
    """The index the holder printed within `timeout` s, or None if it is still waiting."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return int(proc.stdout.readline()) if ready else None


def test_concurrent_processes_get_distinct_devices_and_the_next_waits(tmp_path):
    n = 3
    holders = [_holder(tmp_path, n) for _ in range(n)]
    try:
        indices = [_index(p, 30) for p in holders]
        assert sorted(indices) == list(range(n))  # each its own device
        extra = _holder(tmp_path, n)
        holders.append(extra)
        assert _index(extra, 2.0) is None  # all taken: it waits
        released = holders[indices.index(1)]
        released.stdin.write("done\n")
        released.stdin.flush()
        assert released.wait(10) == 0
        assert _index(extra, 10) == 1  # the released one, promptly

        # A holder killed outright: the OS drops its lock, and its device is free again.
        killed = holders[indices.index(2)]
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        after = _holder(tmp_path, n)
        holders.append(after)
        assert _index(after, 10) == 2
    finally:
        for p in holders:
            if p.poll() is None:
                p.kill()
                p.wait(10)


def test_a_lease_is_released_when_its_block_raises(tmp_path):
    with pytest.raises(RuntimeError, match="step failed"):
        with lease_device(tmp_path, 1) as index:
            assert index == 0
            raise RuntimeError("step failed")
    with lease_device(tmp_path, 1) as index:  # free again, at once
        assert index == 0


def test_the_torch_device_string(tmp_path):
    with leased_torch_device("auto", tmp_path, num_devices=2) as a, leased_torch_device("cuda", tmp_path, 2) as b:
        assert (a, b) == ("cuda:0", "cuda:1")
    with leased_torch_device("auto", tmp_path, num_devices=0) as device:
        assert device == "cpu"  # a CPU-only machine
    for given in ("cpu", "cuda:3", "mps"):  # an explicit device is used as given, without a lease
        with leased_torch_device(given, tmp_path, num_devices=0) as device:
            assert device == given
    with pytest.raises(RuntimeError, match="AHRIUWU_DEVICE=cuda, but no CUDA device"):
        with leased_torch_device("cuda", tmp_path, num_devices=0):
            pass
    with pytest.raises(ValueError, match="num_devices must be at least 1, got 0"):
        with lease_device(tmp_path, 0):
            pass


def test_locks_are_named_by_the_physical_device(tmp_path, monkeypatch):
    """Two processes that see different GPU subsets (CUDA_VISIBLE_DEVICES) agree on which GPU is taken."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    with lease_device(tmp_path, 2) as index:
        assert index == 0 and (tmp_path / "gpu-5.lock").exists()
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(tmp_path), "1"],
            cwd=ROOT,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            assert _index(holder, 2.0) is None  # GPU 5 is its device 0, and it is taken
        finally:
            holder.kill()
            holder.wait(10)


def test_the_compute_resource_leases_per_step_and_not_under_torchrun(tmp_path, monkeypatch):
    """The resource's wiring, with torch made to report two GPUs."""
    import torch

    from pipeline.resources import ComputeResource, StorageResource

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    compute, storage = ComputeResource(device="auto"), StorageResource(root=str(tmp_path))
    with compute.step_device(storage) as a, compute.step_device(storage) as b:
        assert (a, b) == ("cuda:0", "cuda:1")
        with compute.step_device(storage, distributed=True) as ddp:
            assert ddp == "cuda"  # torchrun's ranks pick their GPUs by LOCAL_RANK
    assert list((tmp_path / "locks").iterdir())  # under the data root, per host
    with ComputeResource(device="cpu").step_device(storage) as device:
        assert device == "cpu"
