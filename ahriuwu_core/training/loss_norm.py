"""Loss-term normalization: each named term divided by a running estimate of its RMS (the paper's)."""

from __future__ import annotations

import math

import torch


class RunningRMS:
    """Divide each named loss term by a running (bias-corrected EMA) estimate of its RMS, so terms of very
    different scales contribute comparably (the paper's loss normalization). The estimate is updated with
    the detached value before dividing, so gradients flow only through the numerator."""

    def __init__(self, decay: float = 0.99, eps: float = 1e-8):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"RunningRMS decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.eps = eps
        self.mean_square: dict[str, float] = {}
        self.count: dict[str, int] = {}

    def rms(self, name: str) -> float:
        n = self.count.get(name, 0)
        if n == 0:
            return 1.0
        return math.sqrt(self.mean_square[name] / (1 - self.decay**n))

    def __call__(self, name: str, value: torch.Tensor) -> torch.Tensor:
        sq = float(value.detach().float().pow(2).mean())
        self.mean_square[name] = self.decay * self.mean_square.get(name, 0.0) + (1 - self.decay) * sq
        self.count[name] = self.count.get(name, 0) + 1
        return value / (self.rms(name) + self.eps)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "mean_square": dict(self.mean_square), "count": dict(self.count)}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.mean_square = dict(state["mean_square"])
        self.count = dict(state["count"])
