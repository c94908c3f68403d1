"""Checkpoints with exact resume: model, optimizer, scheduler, RNG state and data position in one file, written
atomically (`files`); a damaged file is named, and resuming falls back to the previous good one (`last.prev.pt`).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..data.files import replace, rotate, save_torch


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


def save_checkpoint(
    path,
    *,
    model: nn.Module,
    optimizer=None,
    scheduler=None,
    step: int = 0,
    data_position: Any = None,
    extra: dict | None = None,
    config: dict | None = None,
    kind: str | None = None,
    previous=None,
) -> Path:
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


def trained_videos(path) -> list[str] | None:
    """The videos a model checkpoint was trained on (ids, as the manifest names them), or None for one saved before
    checkpoints recorded them."""
    videos = (read_checkpoint(path).get("extra") or {}).get("train_videos")
    return list(videos) if videos is not None else None


def load_checkpoint(
    path,
    *,
    model: nn.Module,
    optimizer=None,
    scheduler=None,
    strict: bool = False,
    restore_rng: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
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
        log(
            f"checkpoint {path}: missing keys {missing}, unexpected keys {unexpected}"
            + (f", shape-mismatched (not loaded) {mismatched}" if mismatched else "")
        )
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


def resume_checkpoint(
    candidates, *, log: Callable[[str], None] = print, set_aside: bool = True, **load_kwargs
) -> tuple[Path | None, dict | None]:
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
