"""Training progress: a log line, a JSON line and TensorBoard scalars every few steps."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch


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
