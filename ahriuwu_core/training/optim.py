"""Shared training machinery: optimizer, LR schedule, autocast, loss-term RMS normalization, progress/JSONL
logging. Checkpoints live in `checkpoint`, stopping and folder ownership in `run_control`.

Used by the tokenizer and dynamics trainers. Typical loop::

    opt = make_optimizer(model, cfg.optim)
    sched = make_scheduler(opt, cfg.optim, total_steps)
    start = 0
    if last.exists():
        start = load_checkpoint(last, model=model, optimizer=opt, scheduler=sched)["step"]
    progress = Progress(total_steps, log=log, jsonl_path=out / "train_log.jsonl", start_step=start)
    with StopRequested() as stop:
        for step in range(start + 1, total_steps + 1):
            ...one optimizer step...
            progress.update(step, loss=loss)
            boundary = step % ckpt_every == 0 or step == total_steps
            if boundary or stop.should_stop(at_boundary=boundary):
                save_checkpoint(last, model=model, optimizer=opt, scheduler=sched, step=step, ...)
            if stop.should_stop(at_boundary=boundary):
                break
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

__all__ = [
    "OptimConfig",
    "WeightAverage",
    "make_optimizer",
    "make_scheduler",
    "lr_multiplier",
    "autocast_context",
    "RunningRMS",
    "Progress",
    "format_seconds",
]


# ---------------------------------------------------------------------------- optimizer / LR


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


def autocast_context(device: torch.device | str):
    """bf16 autocast on CUDA; fp32 (no autocast) elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ------------------------------------------------------------------------------- weight averaging


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


# ---------------------------------------------------------------------------- loss normalization


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


# ---------------------------------------------------------------------------- progress


def format_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


def _to_float(v):
    if isinstance(v, torch.Tensor):
        return float(v.detach().float().mean())
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


class Progress:
    """Every `every` steps (and at the last step): a `log` line with step, %, rate, ETA and metrics, and one
    JSON line appended to `jsonl_path` ({"step", "elapsed_s", "steps_per_s", [items_per_s], **metrics}).
    With `tensorboard_dir`, the same numbers also go to TensorBoard event files there, as `train/<name>`
    scalars at their step; `close()` flushes them."""

    def __init__(
        self,
        total_steps: int,
        log: Callable[[str], None] = print,
        jsonl_path=None,
        every: int = 10,
        start_step: int = 0,
        items_per_step: int | None = None,
        item_name: str = "frames",
        prefix: str = "",
        tensorboard_dir=None,
    ):
        self.total = int(total_steps)
        self.log = log
        self.jsonl_path = Path(jsonl_path) if jsonl_path else None
        self.every = max(1, int(every))
        self.items_per_step = items_per_step
        self.item_name = item_name
        self.prefix = prefix
        self.start_step = int(start_step)
        self.t0 = time.monotonic()
        if self.jsonl_path:
            self.jsonl_path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = None
        if tensorboard_dir is not None:
            from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when asked for

            self.writer = SummaryWriter(log_dir=str(tensorboard_dir))

    def rate(self, step: int) -> float:
        elapsed = time.monotonic() - self.t0
        return (step - self.start_step) / elapsed if elapsed > 0 else float("nan")

    def update(self, step: int, force: bool = False, **metrics) -> bool:
        """Returns True when it logged this step."""
        if not (force or step % self.every == 0 or step == self.total):
            return False
        elapsed = time.monotonic() - self.t0
        rate = self.rate(step)
        eta = (self.total - step) / rate if rate and rate > 0 else float("inf")
        metrics = {k: _to_float(v) for k, v in metrics.items()}
        bar_w = 20
        filled = int(bar_w * step / max(1, self.total))
        parts = [
            f"{self.prefix}[{'#' * filled}{'.' * (bar_w - filled)}] step {step}/{self.total}"
            f" ({100.0 * step / max(1, self.total):.1f}%)",
            f"{rate:.2f} it/s",
        ]
        record = {"step": int(step), "elapsed_s": round(elapsed, 3), "steps_per_s": rate}
        if self.items_per_step:
            record[f"{self.item_name}_per_s"] = rate * self.items_per_step
            parts.append(f"{rate * self.items_per_step:.1f} {self.item_name}/s")
        parts.append(f"ETA {format_seconds(eta)}")
        parts += [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()]
        self.log(" ".join(parts))
        if self.jsonl_path:
            record.update(metrics)
            with open(self.jsonl_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            scalars = {"steps_per_s": rate, **metrics}
            if self.items_per_step:
                scalars[f"{self.item_name}_per_s"] = rate * self.items_per_step
            for name, value in scalars.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(f"train/{name}", value, step)
            self.writer.flush()  # complete on disk at every logged step, also when training raises later
        return True

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
