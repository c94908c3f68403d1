"""The optimizer and its learning-rate schedule (AdamW, warmup then cosine / warmup-stable-decay / constant), and the
moving average of the weights that inference uses."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class OptimConfig:
    lr: float = 3e-4
    weight_decay: float = 0.05
    betas: tuple = (0.9, 0.95)
    warmup_steps: int = 100
    schedule: str = "cosine"  # "cosine" | "wsd" (warmup-stable-decay) | "constant"
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    wsd_decay_fraction: float = 0.2  # WSD: the last fraction of steps decays linearly to min_lr_ratio


# Parameter names containing these fragments are never weight-decayed (learned tokens act as embeddings).
_NO_DECAY_NAME_PARTS = ("norm", "embed", "token", "pos_", "bias")


def make_optimizer(model: nn.Module, cfg: OptimConfig, lr_scale: dict[str, float] | None = None) -> torch.optim.AdamW:
    """AdamW with weight decay only on >=2-D weights that are not norms, biases or embeddings. `lr_scale` maps a
    parameter-name prefix to a learning-rate multiple for those parameters (their own groups, no decay)."""
    embedding_params = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay = [], []
    scaled: dict[str, list] = {prefix: [] for prefix in (lr_scale or {})}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lname = name.lower()
        prefix = next((k for k in scaled if name.startswith(k)), None)
        if prefix is not None:
            scaled[prefix].append(p)
        elif p.ndim < 2 or id(p) in embedding_params or any(s in lname for s in _NO_DECAY_NAME_PARTS):
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups += [{"params": ps, "weight_decay": 0.0, "lr": cfg.lr * lr_scale[k]} for k, ps in scaled.items() if ps]
    on_cuda = any(p.is_cuda for p in model.parameters())
    kwargs = {"fused": True} if on_cuda else {}
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), **kwargs)


def lr_multiplier(step: int, cfg: OptimConfig, total_steps: int) -> float:
    """LR factor at optimizer step `step` (0-based: the factor used for the (step+1)-th update)."""
    warm = max(0, int(cfg.warmup_steps))
    if warm > 0 and step < warm:
        return (step + 1) / warm
    if cfg.schedule == "constant":
        return 1.0
    total = max(total_steps, warm + 1)
    if cfg.schedule == "cosine":
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if cfg.schedule == "wsd":
        decay_steps = max(1, int(round(cfg.wsd_decay_fraction * (total - warm))))
        decay_start = total - decay_steps
        if step < decay_start:
            return 1.0
        progress = min(1.0, (step - decay_start) / decay_steps)
        return 1.0 - (1 - cfg.min_lr_ratio) * progress
    raise ValueError(f"unknown LR schedule {cfg.schedule!r} (expected 'cosine', 'wsd' or 'constant')")


def make_scheduler(opt: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int):
    if cfg.schedule not in ("cosine", "wsd", "constant"):
        raise ValueError(f"unknown LR schedule {cfg.schedule!r} (expected 'cosine', 'wsd' or 'constant')")
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_multiplier(s, cfg, total_steps))


class WeightAverage:
    """Exponential moving average of a model's parameters, what inference uses: it averages out the step-to-step
    noise of a high learning rate. Bias-corrected (as Adam's moments are): after n updates the average is
    sum_i d^(n-i) p_i / sum_i d^(n-i), a plain mean of all steps while n << 1/(1-d), and an EMA with a window of
    about 1/(1-d) steps after that."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"WeightAverage decay must be in (0, 1), got {decay}")
        self.decay, self.updates = decay, 0
        self.params = {k: torch.zeros_like(p, dtype=torch.float32) for k, p in model.named_parameters()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, p in model.named_parameters():
            self.params[k].mul_(self.decay).add_(p.detach().float(), alpha=1 - self.decay)
        self.updates += 1

    def averaged(self) -> dict[str, torch.Tensor]:
        if self.updates == 0:
            raise ValueError("WeightAverage: no update yet")
        correction = 1.0 - self.decay**self.updates
        return {k: v / correction for k, v in self.params.items()}

    def averaged_state(self, model: nn.Module) -> dict:
        """The model's state dict with the averaged parameters (buffers as they are)."""
        average = self.averaged()
        return {k: average[k].to(v.dtype) if k in average else v for k, v in model.state_dict().items()}

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "params": self.params}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.updates = state["decay"], int(state["updates"])
        self.params = {k: v.float().clone() for k, v in state["params"].items()}

    @classmethod
    def from_state(cls, state: dict) -> "WeightAverage":
        """The average saved by `state_dict`, without the model it was made for."""
        average = cls.__new__(cls)
        average.load_state_dict(state)
        return average
