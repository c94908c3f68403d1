"""Shared training machinery: optimizer, LR schedule, autocast, checkpoints with exact resume,
loss-term RMS normalization, progress/JSONL logging and signal-driven graceful stop.

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
import ctypes
import json
import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .files import pid_lock, replace, rotate, save_torch

__all__ = [
    "OptimConfig", "make_optimizer", "make_scheduler", "lr_multiplier", "autocast_context",
    "rng_state", "set_rng_state", "save_checkpoint", "load_checkpoint", "resume_checkpoint",
    "CheckpointUnreadable", "RunningRMS", "Progress", "StopRequested", "ParentWatch", "stop_guards",
    "run_folder_lock", "format_seconds",
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


def make_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW with weight decay only on >=2-D weights that are not norms, biases or embeddings."""
    embedding_params = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lname = name.lower()
        if p.ndim < 2 or id(p) in embedding_params or any(s in lname for s in _NO_DECAY_NAME_PARTS):
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
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


# ---------------------------------------------------------------------------- RNG + checkpoints

def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


        raise


def save_checkpoint(path, *, model: nn.Module, optimizer=None, scheduler=None, step: int = 0,
                    data_position: Any = None, extra: dict | None = None,
                    config: dict | None = None, kind: str | None = None, previous=None) -> Path:
    """Atomically write model + training state + RNG states. `config`/`kind` are stored top-level
    (contract: `load_*` functions rebuild the model from `config`). With `previous`, the checkpoint at `path`
    is moved there first, so a damaged `path` still leaves one good checkpoint to resume from."""
    ckpt = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "step": int(step),
        "rng": rng_state(),
        "data_position": data_position,
        "extra": extra or {},
        "config": config,
        "kind": kind,
    }
    if previous is not None:
        rotate(path, previous)
    save_torch(ckpt, path)
    return Path(path)


class CheckpointUnreadable(ValueError):
    pass


def read_checkpoint(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # corrupt / not a torch file
        raise CheckpointUnreadable(f"cannot read checkpoint {path}: {e}") from e


def load_checkpoint(path, *, model: nn.Module, optimizer=None, scheduler=None, strict: bool = False,
                    restore_rng: bool = True, log: Callable[[str], None] = print) -> dict:
    """Load weights (non-strict by default: missing/unexpected/shape-mismatched keys are reported, not
    fatal), optimizer/scheduler state when given and present, and the RNG states.

    Returns {"step", "data_position", "extra", "config", "kind", "missing_keys", "unexpected_keys",
    "mismatched_keys"}."""
    ckpt = read_checkpoint(path)
    if "model" not in ckpt:
        raise ValueError(f"checkpoint {path} has no 'model' state dict")
    state = ckpt["model"]
    own = model.state_dict()
    mismatched = [k for k, v in state.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    if mismatched and strict:
        raise ValueError(f"checkpoint {path}: shape mismatch for {mismatched}")
    state = {k: v for k, v in state.items() if k not in mismatched}
    result = model.load_state_dict(state, strict=strict)
    missing = sorted(set(result.missing_keys) | set(mismatched))
    unexpected = list(result.unexpected_keys)
    if missing or unexpected:
        log(f"checkpoint {path}: missing keys {missing}, unexpected keys {unexpected}"
            + (f", shape-mismatched (not loaded) {mismatched}" if mismatched else ""))
    partial = bool(missing or unexpected)
    if optimizer is not None and ckpt.get("optimizer") is not None:
        if partial:
            log(f"checkpoint {path}: model keys differ, optimizer state not restored")
        else:
            optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None and ckpt.get("scheduler") is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    if restore_rng and ckpt.get("rng"):
        set_rng_state(ckpt["rng"])
    return {
        "step": int(ckpt.get("step", 0)),
        "data_position": ckpt.get("data_position"),
        "extra": ckpt.get("extra") or {},
        "config": ckpt.get("config"),
        "kind": ckpt.get("kind"),
        "missing_keys": missing,
        "unexpected_keys": unexpected,
        "mismatched_keys": mismatched,
    }


def resume_checkpoint(candidates, *, log: Callable[[str], None] = print, set_aside: bool = True,
                      **load_kwargs) -> tuple[Path | None, dict | None]:
    """load_checkpoint from the first readable of `candidates` (newest first). An unreadable one is logged,
    naming it, and (`set_aside`) moved to `<stem>.damaged<suffix>` so the next rotation cannot push the good
    older one out. Returns (path, info), or (None, None) when none exists or none is readable (start fresh)."""
    damaged = []
    for path in map(Path, candidates):
        if not path.exists():
            continue
        try:
            return path, load_checkpoint(path, log=log, **load_kwargs)
        except CheckpointUnreadable as e:
            aside = path.with_name(f"{path.stem}.damaged{path.suffix}")
            if set_aside:
                replace(path, aside)
            log(f"WARNING: {e}" + (f" (moved to {aside})" if set_aside else ""))
            damaged.append(path)
    if damaged:
        log(f"WARNING: no readable checkpoint among {[str(p) for p in damaged]}: training starts from scratch")
    return None, None


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
        return math.sqrt(self.mean_square[name] / (1 - self.decay ** n))

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

    def __init__(self, total_steps: int, log: Callable[[str], None] = print, jsonl_path=None, every: int = 10,
                 start_step: int = 0, items_per_step: int | None = None, item_name: str = "frames",
                 prefix: str = "", tensorboard_dir=None):
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
        parts = [f"{self.prefix}[{'#' * filled}{'.' * (bar_w - filled)}] step {step}/{self.total}"
                 f" ({100.0 * step / max(1, self.total):.1f}%)", f"{rate:.2f} it/s"]
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


# ---------------------------------------------------------------------------- graceful stop

class StopRequested:
    """Context manager turning signals into a stop request the training loop polls:

    - SIGTERM -> stop at the next checkpoint boundary (`should_stop(at_boundary=True)` becomes True);
    - SIGUSR1 -> stop after the current step (`should_stop(...)` is True at once, boundary or not).

    On stop the loop must save its checkpoint before leaving, so the run resumes exactly. Handlers are
    installed on __enter__ (main thread only; elsewhere only `request()` works) and the previous handlers
    are restored on __exit__. `request("boundary" | "step")` triggers the same programmatically."""

    BOUNDARY = "boundary"
    STEP = "step"

    def __init__(self, install_handlers: bool = True, log: Callable[[str], None] = print):
        self.install_handlers = install_handlers
        self.log = log
        self.mode: str | None = None
        self._previous: dict = {}

    def request(self, mode: str = BOUNDARY) -> None:
        if mode not in (self.BOUNDARY, self.STEP):
            raise ValueError(f"stop mode must be 'boundary' or 'step', got {mode!r}")
        if self.mode != self.STEP:  # "step" is the stronger request; never downgrade it
            self.mode = mode

    @property
    def requested(self) -> bool:
        return self.mode is not None

    def should_stop(self, at_boundary: bool = False) -> bool:
        if self.mode == self.STEP:
            return True
        return self.mode == self.BOUNDARY and at_boundary

    def _on_signal(self, signum, frame):
        mode = self.STEP if signum == signal.SIGUSR1 else self.BOUNDARY
        self.log(f"received {signal.Signals(signum).name}: stopping "
                 + ("after the current step" if mode == self.STEP else "at the next checkpoint boundary"))
        self.request(mode)

    def __enter__(self) -> "StopRequested":
        if self.install_handlers and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGUSR1):
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc) -> bool:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        return False


# ---------------------------------------------------------------------------- parent death

class ParentWatch:
    """Context manager noticing when the process that started this one dies (its parent pid changes: this
    process was reparented to init or a subreaper), so a trainer does not train on unseen after its launcher,
    e.g. a Dagster step process, was killed. It then calls `on_orphan` once (the trainer stops after the
    current step, checkpointing), and exits the process hard if it is still running `grace_s` later (a loop
    stuck in I/O or a collective never gets to stop).

    A daemon thread polls the parent pid every `interval` seconds; on Linux, PR_SET_PDEATHSIG also delivers
    `signum` at once (main thread only). That signal fires when the parent *thread* exits too, so it only
    prompts the same pid check."""

    def __init__(self, on_orphan: Callable[[], None], interval: float = 0.5, grace_s: float = 60.0,
                 log: Callable[[str], None] = print, signum: int = signal.SIGUSR2):
        self.on_orphan = on_orphan
        self.interval = interval
        self.grace_s = grace_s
        self.log = log
        self.signum = signum
        self.parent = os.getppid()
        self.orphaned = False
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._previous = None
        self._prctl = None

    def check(self) -> bool:
        if os.getppid() == self.parent:
            return False
        with self._lock:
            if self.orphaned:
                return True
            self.orphaned = True
        with contextlib.suppress(Exception):  # stdout may be a pipe to the dead parent
            self.log(f"parent process {self.parent} is gone: stopping after the current step")
        self.on_orphan()
        if not self._done.is_set():
            threading.Thread(target=self._deadline, daemon=True).start()
        return True

    def _deadline(self):
        if not self._done.wait(self.grace_s):
            with contextlib.suppress(Exception):
                self.log(f"still running {self.grace_s}s after the parent died: exiting")
            os._exit(1)

    def _poll(self):
        while not self._done.wait(self.interval):
            if self.check():
                return

    def _on_signal(self, signum, frame):
        self.check()

    def __enter__(self) -> "ParentWatch":
        if self.parent <= 1:  # started by init (or as pid 1): no launcher to outlive
            return self
        if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread():
            with contextlib.suppress(OSError, AttributeError):
                prctl = ctypes.CDLL(None, use_errno=True).prctl
                self._previous = signal.signal(self.signum, self._on_signal)
                if prctl(1, int(self.signum), 0, 0, 0) == 0:  # PR_SET_PDEATHSIG
                    self._prctl = prctl
        threading.Thread(target=self._poll, daemon=True, name="parent-watch").start()
        self.check()  # the parent may have died before the signal was armed
        return self

    def __exit__(self, *exc) -> bool:
        self._done.set()
        if self._prctl is not None:
            self._prctl(1, 0, 0, 0, 0)
        if self._previous is not None:
            signal.signal(self.signum, self._previous)
        return False


# ---------------------------------------------------------------------------- what every trainer holds

def run_folder_lock(out_dir, log: Callable[[str], None] = print):
    """One trainer per run folder: out_dir/trainer.lock (files.pid_lock) while training; a second trainer on the
    folder fails at once with files.LockHeld naming the owner, and a dead owner's lock is broken."""
    return pid_lock(Path(out_dir) / "trainer.lock", log=log)


@contextlib.contextmanager
def stop_guards(log: Callable[[str], None] = print, exit_with_parent: bool = True):
    """StopRequested and, with `exit_with_parent`, a ParentWatch that asks it to stop after the current step.
    Yields (stop, watch or None); `watch.orphaned` says whether the parent's death was the reason."""
    with StopRequested(log=log) as stop:
        if not exit_with_parent:
            yield stop, None
            return
        with ParentWatch(lambda: stop.request(StopRequested.STEP), log=log) as watch:
            yield stop, watch
