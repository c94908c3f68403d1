"""Which GPU a step runs on. With N GPUs and the `gpu` pool's limit at N, N steps run at once; each takes the first
free device through an exclusive lock file per device (`fcntl.flock`), held until the step ends. The OS drops a
lock when its holder exits, killed or not, so a crashed step never strands a device."""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


def _lock_names(num_devices: int) -> list[str]:
    """One lock name per visible device. Under CUDA_VISIBLE_DEVICES the name is the physical device it maps to, so
    processes that see different subsets still agree on which GPU is taken."""
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return [visible[i] if i < len(visible) else str(i) for i in range(num_devices)]


@contextmanager
def lease_device(
    lock_dir: Path, num_devices: int, *, poll_s: float = 0.2, on_wait: Callable[[str], None] | None = None
) -> Iterator[int]:
    """Hold the first free index in [0, num_devices) until the block ends; wait while all are taken."""
    if num_devices < 1:
        raise ValueError(f"lease_device: num_devices must be at least 1, got {num_devices}")
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    names = _lock_names(num_devices)
    waiting = False
    while True:
        for index, name in enumerate(names):
            fd = os.open(lock_dir / f"gpu-{name}.lock", os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for a person looking
                yield index
            finally:
                os.close(fd)  # releases the lock
            return
        if not waiting and on_wait is not None:
            on_wait(f"all {num_devices} GPU(s) are taken (locks in {lock_dir}); waiting for one to be released")
        waiting = True
        time.sleep(poll_s)


@contextmanager
def leased_torch_device(
    requested: str, lock_dir: Path, num_devices: int | None = None, on_wait: Callable[[str], None] | None = None
) -> Iterator[str]:
    """The torch device for one step. `auto` or `cuda`: "cuda:<i>", a leased GPU (`auto` without a GPU: "cpu").
    Anything else ("cpu", "cuda:1", "mps") is used as given. num_devices: the GPUs to share (default: those
    visible to torch)."""
    if requested not in ("auto", "cuda"):
        yield requested
        return
    if num_devices is None:
        import torch

        num_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if num_devices == 0:
        if requested == "cuda":
            raise RuntimeError("AHRIUWU_DEVICE=cuda, but no CUDA device is visible (use auto or cpu)")
        yield "cpu"
        return
    with lease_device(lock_dir, num_devices, on_wait=on_wait) as index:
        yield f"cuda:{index}"
