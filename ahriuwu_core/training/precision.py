"""The precision a step computes in: bf16 autocast on CUDA, fp32 elsewhere. Training and inference use the same."""

from __future__ import annotations

import contextlib

import torch


def autocast_context(device: torch.device | str):
    """bf16 autocast on CUDA; fp32 (no autocast) elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
