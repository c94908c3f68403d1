"""Data-parallel ranks: joining the process group, and the all-reduces that keep every rank's decisions and weights
identical."""

from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist


@contextlib.contextmanager
def distributed(device: str | None = None):
    """Join the process group when WORLD_SIZE > 1 (NCCL on CUDA, gloo on CPU), started by torchrun or by
    `launch`; yield this rank's device.

    The same entry point then runs alone or as one of N data-parallel ranks."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if world > 1:
        if device.startswith("cuda"):
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
        else:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
        # torchrun's env:// store, or the FileStore of `launch` (nothing listening).
        dist.init_process_group(
            "nccl" if device.startswith("cuda") else "gloo",
            init_method=os.environ.get("AHRIUWU_DIST_INIT", "env://"),
            rank=int(os.environ["RANK"]),
            world_size=world,
        )
    try:
        yield device
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def all_agree(flag: bool, device) -> bool:
    """Under DDP: True if any rank says True (op MAX) -- keeps skip/stop decisions identical on all ranks."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def sum_over_ranks(t: torch.Tensor) -> torch.Tensor:
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def ranks_in_sync(model, device) -> bool:
    """Under DDP: whether every rank ends with bit-identical weights (a desync would silently train N models)."""
    flat = torch.cat([p.detach().float().reshape(-1) for p in model.parameters()]).to(device)
    lo, hi = flat.clone(), flat.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    return bool(torch.equal(lo, hi))
