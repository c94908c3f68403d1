"""Dynamics (world model) training: shortcut forcing on latent windows, resumable, signal-aware, DDP-ready.

    python -m ahriuwu_core.dynamics.train --config CONFIG.json --out DIR
    torchrun --nproc_per_node N -m ahriuwu_core.dynamics.train --config CONFIG.json --out DIR

CONFIG.json (a path or an inline JSON object): {"preset": "demo", "train_stores": [paths] or "latents_dir": dir,
"device": "cpu"|"cuda", ...any DynamicsTrainConfig field ("model" and "optim" dicts merge over the preset)}.
Outputs in DIR: last.pt (resume state, rewritten every ckpt_every steps; the one before it kept as last.prev.pt),
dynamics.pt (final model), train_log.jsonl, result.json (the returned metrics), and trainer.lock while training
(one trainer per folder). Rerunning the same command resumes from last.pt, or last.prev.pt if last.pt is damaged.
The trainer stops (checkpointing) when the process that started it dies, unless run with --outlive-parent.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist

from ..data.files import write_json
from ..training.checkpoint import read_checkpoint, resume_checkpoint, save_checkpoint
from ..training.loss_norm import RunningRMS
from ..training.optim import OptimConfig, WeightAverage, make_optimizer, make_scheduler
from ..training.precision import autocast_context
from ..training.progress import Progress
from ..training.run_control import run_folder_lock, stop_guards
from .data import OBJECTIVE_STREAM, LatentWindows, example_seed
from .model import DynamicsConfig, WorldModel
from .objective import ObjectiveConfig, shortcut_forcing_loss
from .prior import fit_least_squares

KIND = "dynamics"


class NonFiniteLossError(RuntimeError):
    pass


@dataclass
class DynamicsTrainConfig:
    model: DynamicsConfig = field(default_factory=DynamicsConfig)  # its num_tokens, token_dim and action space
    # are replaced by the training data's
    steps: int = 1000
    batch_size: int = 16  # per rank: the global batch is batch_size x world size
    seq_len: int = 16  # short batches
    long_seq_len: int = 32  # long batches (batch size scaled down to keep frames per step)
    long_ratio: float = 0.1  # fraction of steps that use long batches
    stride: int = 4  # window start stride (frames)
    single_image_fraction: float = 0.3
    context_noise: float = 0.1
    context_prefix_prob: float = 0.5
    shortcut_fraction: float | None = None  # fraction of examples trained on coarse steps (None: the paper's uniform)
    loss_weight: str = "ramp"  # per-frame loss weight: "ramp" (the paper's) or "flat" (`objective.frame_weight`)
    optim: OptimConfig = field(default_factory=OptimConfig)
    prior_lr_scale: float = 1.0  # the action-kernel prior's filters learn at this multiple of optim.lr
    prior_fit_windows: int = 0  # > 0: before training, the prior's filters are set to their least-squares fit on
    # this many training windows (else they start at persistence)
    ema_decay: float = 0.0  # > 0: the model saved for inference is this moving average of the weights
    ckpt_every: int = 200
    log_every: int = 10
    seed: int = 0
    max_nonfinite: int = 5  # consecutive non-finite losses before giving up
    in_memory: bool = True  # load latent stores into RAM (small data); else read windows from zarr
    in_memory_max_bytes: int = 1 << 30  # ... only those whose latents take at most this; larger: from zarr
    time_limit_s: float = 0.0  # > 0: checkpoint and stop once training has run this long
    num_threads: int = 0  # > 0: torch.set_num_threads (CPU); 1 avoids OpenMP thrashing on a shared CPU

    def __post_init__(self):  # dicts (from JSON) become the typed configs
        if self.loss_weight not in ("ramp", "flat"):
            raise ValueError(f"DynamicsTrainConfig.loss_weight={self.loss_weight!r}: expected 'ramp' or 'flat'")
        self.model = _typed(DynamicsConfig, self.model, "DynamicsTrainConfig.model")
        self.optim = _typed(OptimConfig, self.optim, "DynamicsTrainConfig.optim")

    @classmethod
    def from_dict(cls, d: dict) -> "DynamicsTrainConfig":
        return _typed(cls, d, "DynamicsTrainConfig")

    def objective(self) -> ObjectiveConfig:
        return ObjectiveConfig(
            self.single_image_fraction,
            self.context_noise,
            self.context_prefix_prob,
            self.shortcut_fraction,
            self.loss_weight,
        )

    def batch_shape(self, step: int) -> tuple[int, int]:
        """(batch size, frames) for optimizer step `step` (1-based): long batches spread evenly at long_ratio."""
        r = self.long_ratio
        if r > 0 and math.floor(step * r) > math.floor((step - 1) * r):
            return max(1, self.batch_size * self.seq_len // self.long_seq_len), self.long_seq_len
        return self.batch_size, self.seq_len


def _typed(cls, value, what: str):
    """`value` as a `cls`: itself, or built from a dict of its fields (an unknown field is an error)."""
    if isinstance(value, cls):
        return value
    unknown = set(value) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"{what}: unknown fields {sorted(unknown)}")
    return cls(**value)


def load_world_model(path, device="cpu") -> WorldModel:
    return load_dynamics(path, device)[0]


def load_dynamics(path, device="cpu") -> tuple[WorldModel, DynamicsTrainConfig]:
    """The world model and the config it was trained with (rollouts must corrupt context as training did), from
    one read of the checkpoint."""
    ckpt = read_checkpoint(path)
    if ckpt.get("kind") not in (KIND, None) or not ckpt.get("config"):
        raise ValueError(f"{path} is not a dynamics checkpoint (kind={ckpt.get('kind')!r})")
    train_config = (ckpt.get("extra") or {}).get("train_config")
    if not isinstance(train_config, dict):
        raise ValueError(f"{path}: dynamics checkpoint without its training config (extra.train_config)")
    model = WorldModel(DynamicsConfig(**ckpt["config"]))
    state = dict(ckpt["model"])
    ema = (ckpt.get("extra") or {}).get("ema")
    if ema and ema.get("updates"):  # a training checkpoint with a weight average: inference uses the average
        averaged = WeightAverage.from_state(ema).averaged()
        state.update({k: v.to(state[k].dtype) for k, v in averaged.items() if k in state})
    # Checkpoints from before latent standardization lack the stats; their defaults (0, 1) are what they used.
    result = model.load_state_dict(state, strict=False)
    bad = sorted(set(result.missing_keys) - {"latent_mean", "latent_std"}) + list(result.unexpected_keys)
    if bad:
        raise ValueError(f"{path}: dynamics checkpoint does not match its config (keys {bad})")
    return model.to(device).eval(), DynamicsTrainConfig.from_dict(train_config)


def _all_agree(flag: bool, device, op=None) -> bool:
    """Under DDP: True if any rank says True (op MAX) -- keeps skip/stop decisions identical on all ranks."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def _sum_over_ranks(t: torch.Tensor) -> torch.Tensor:
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def _ranks_in_sync(model, device) -> bool:
    """Under DDP: whether every rank ends with bit-identical weights (a desync would silently train N models)."""
    flat = torch.cat([p.detach().float().reshape(-1) for p in model.parameters()]).to(device)
    lo, hi = flat.clone(), flat.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    return bool(torch.equal(lo, hi))


def train_dynamics(
    train_stores: list,
    cfg: DynamicsTrainConfig,
    out_dir,
    device="cpu",
    log: Callable[[str], None] = print,
    report: Callable[[dict], None] | None = None,
    exit_with_parent: bool = True,
) -> dict:
    """Train (or resume, from out_dir/last.pt) a world model on latent stores. Writes out_dir/dynamics.pt when
    all steps are done, plus last.pt, train_log.jsonl and result.json (rank 0 only). Returns the metrics.

    Rank 0 holds out_dir/trainer.lock throughout: a second trainer on the folder raises files.LockHeld. With
    `exit_with_parent`, the death of the parent process stops training after the current step."""
    out_dir = Path(out_dir)
    distributed = dist.is_available() and dist.is_initialized()
    is_main = (dist.get_rank() if distributed else 0) == 0
    say = log if is_main else (lambda s: None)
    with run_folder_lock(out_dir, log=say) if is_main else contextlib.nullcontext():
        return _train(train_stores, cfg, out_dir, torch.device(device), say, report, exit_with_parent)


def _train(train_stores, cfg, out_dir, device, say, report, exit_with_parent) -> dict:
    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    is_main = rank == 0

    if cfg.num_threads > 0 and device.type == "cpu":
        torch.set_num_threads(cfg.num_threads)
    # The token layout and the action space come from the data (the labelled stores' recorded space).
    data = LatentWindows(
        train_stores,
        stride=cfg.stride,
        rank=rank,
        world_size=world,
        in_memory=cfg.in_memory,
        in_memory_max_bytes=cfg.in_memory_max_bytes,
    )
    model_cfg = dataclasses.replace(
        cfg.model, num_tokens=data.num_tokens, token_dim=data.token_dim, action_num_classes=data.action_num_classes
    )
    torch.manual_seed(cfg.seed)  # identical init on every rank
    model = WorldModel(model_cfg).to(device)
    params = model.num_params()
    opt = make_optimizer(model, cfg.optim, {"prior.": cfg.prior_lr_scale} if model.prior is not None else None)
    sched = make_scheduler(opt, cfg.optim, cfg.steps)
    normalizer = RunningRMS()
    average = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    last, prev = out_dir / "last.pt", out_dir / "last.prev.pt"
    start, extra = 0, {}
    # Every rank reads the same files; one moving a damaged file aside is enough (others then skip to prev).
    resumed_path, info = resume_checkpoint(
        [last, prev], model=model, optimizer=opt, scheduler=sched, log=say, set_aside=is_main
    )
    if resumed_path is not None:
        start, extra = info["step"], info["extra"]
        if "normalizer" in extra:
            normalizer.load_state_dict(extra["normalizer"])
        if average is not None and "ema" in extra:
            average.load_state_dict(extra["ema"])
        say(f"resumed dynamics training from {resumed_path} at step {start}")
    else:  # latent stats from frames drawn with step 0 (training steps start at 1), the same on every rank
        model.set_latent_stats(data.batch(256, 1, cfg.seed, 0, device, first=0)["latents"])
        fit_prior = bool(cfg.prior_fit_windows and model.prior is not None)
        if fit_prior or model_cfg.precondition:  # windows drawn with step 0 too: the same on every rank
            fit = data.batch(cfg.prior_fit_windows or 64, cfg.seq_len, cfg.seed, 0, device, first=256)
            clean = model.standardize(fit["latents"])
        if fit_prior:
            mse = fit_least_squares(model.prior, clean, fit["actions"], fit["has_actions"])
            say(
                f"prior: least-squares fit on {cfg.prior_fit_windows} windows: squared error {mse:.4f}, "
                f"persistence's {float((clean[:, 1:] - clean[:, :-1]).pow(2).mean()):.4f}"
            )
        if model_cfg.precondition:  # the skip's error variance, under the prior as it starts (fitted or not)
            var = model.set_change_var(clean, fit["actions"], fit["has_actions"])
            say(f"preconditioning: the prior's error variance {var:.4f} (standardized)")
    resumed_from = start
    train_model = model
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    say(
        f"dynamics: {params:,} params, {data.num_tokens}x{data.token_dim} latents, "
        f"{model_cfg.tokens_per_frame} tokens/frame, {len(data.videos)} videos "
        f"({sum(not v.in_memory for v in data.videos)} read from zarr window by window), world size {world}"
    )

    obj_cfg = cfg.objective()
    frames_per_step = cfg.batch_size * cfg.seq_len * world
    progress = Progress(
        cfg.steps,
        log=say,
        jsonl_path=out_dir / "train_log.jsonl" if is_main else None,
        every=cfg.log_every,
        start_step=start,
        items_per_step=frames_per_step,
        item_name="frames",
        tensorboard_dir=out_dir if is_main else None,
    )
    losses: list[float] = list(extra.get("recent_losses", []))
    loss_first = extra.get("loss_first")
    loss_min = extra.get("loss_min", float("inf"))
    skipped_total = int(extra.get("nonfinite_skipped", 0))
    consecutive = 0
    stopped_by = None
    hit_time_limit = False
    frames_done = 0
    t0 = time.monotonic()

    def checkpoint(step):
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            raise NonFiniteLossError(f"refusing to save non-finite weights at step {step} ({last})")
        if is_main:
            save_checkpoint(
                last,
                previous=prev,
                model=model,
                optimizer=opt,
                scheduler=sched,
                step=step,
                data_position={"step": step},
                config=dataclasses.asdict(model_cfg),
                kind=KIND,
                extra={
                    "train_config": dataclasses.asdict(cfg),
                    "normalizer": normalizer.state_dict(),
                    "recent_losses": losses[-20:],
                    "loss_first": loss_first,
                    "loss_min": loss_min,
                    "nonfinite_skipped": skipped_total,
                    **({"ema": average.state_dict()} if average is not None else {}),
                },
            )
        if distributed:
            dist.barrier()

    step = start
    with stop_guards(say, exit_with_parent) as (stop, watch):
        for step in range(start + 1, cfg.steps + 1):
            B, T = cfg.batch_shape(step)
            # This rank's slice of the global batch: examples [rank*B, (rank+1)*B), each drawn (window,
            # corruption, noise) from (seed, step, example) alone, so any world size sees the same global batch.
            first = rank * B
            batch = data.batch(B, T, cfg.seed, step, device, first=first)
            gens = [
                torch.Generator().manual_seed(example_seed(cfg.seed, step, g, OBJECTIVE_STREAM))
                for g in range(first, first + B)
            ]
            model.train()
            with autocast_context(device):
                loss, stats = shortcut_forcing_loss(
                    train_model,
                    batch["latents"],
                    batch["actions"],
                    batch["has_actions"],
                    obj_cfg,
                    example_generators=gens,
                    normalizer=normalizer,
                    teacher=model,
                    reduce_sum=_sum_over_ranks if distributed else None,
                )
            opt.zero_grad(set_to_none=True)
            ok = not _all_agree(not bool(torch.isfinite(loss)), device)
            if ok:
                loss.backward()
                gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
                ok = bool(torch.isfinite(gnorm))  # grads are all-reduced: same verdict on every rank
            if ok:
                opt.step()
                sched.step()  # skipped updates do not advance the schedule
                if average is not None:
                    average.update(model)
                consecutive = 0
                raw = stats["loss_raw"]
                losses.append(raw)
                loss_first = raw if loss_first is None else loss_first
                loss_min = min(loss_min, raw)
            else:
                opt.zero_grad(set_to_none=True)
                consecutive += 1
                skipped_total += 1
                say(
                    f"step {step}: non-finite loss/gradient, update skipped ({consecutive} in a row, "
                    f"{skipped_total} total)"
                )
                if consecutive >= cfg.max_nonfinite:
                    raise NonFiniteLossError(
                        f"dynamics training: {consecutive} consecutive non-finite losses at step {step} "
                        f"(max_nonfinite={cfg.max_nonfinite}); last finite checkpoint is {last}"
                    )
            frames_done += B * T
            if is_main and progress.update(
                step,
                loss=stats["loss_raw"],
                lr=sched.get_last_lr()[0],
                **{k: v for k, v in stats.items() if k != "loss_raw"},
            ):
                if report is not None:
                    report({"step": step, "loss": stats["loss_raw"]})
            boundary = step % cfg.ckpt_every == 0 or step == cfg.steps
            if cfg.time_limit_s and time.monotonic() - t0 > cfg.time_limit_s and not stop.requested:
                say(f"time limit {cfg.time_limit_s}s reached at step {step}")
                stop.request("step")
                hit_time_limit = True
            want_stop = _all_agree(stop.should_stop(at_boundary=boundary), device)
            if boundary or want_stop:
                checkpoint(step)
            if want_stop and step < cfg.steps:
                stopped_by = (
                    "time_limit"
                    if hit_time_limit
                    else "parent_died"
                    if watch and watch.orphaned
                    else stop.mode or "peer"
                )
                say(f"stopping at step {step} ({stopped_by}); rerun to resume from {last}")
                break

    progress.close()
    seconds = time.monotonic() - t0
    completed = step >= cfg.steps and stopped_by is None
    final = out_dir / "dynamics.pt"
    usable = completed or stopped_by == "time_limit"  # a time-boxed run still yields its model
    if usable and is_main:
        released = model
        if average is not None and average.updates:  # the model a user gets is the averaged one
            released = WorldModel(model_cfg).to(device)
            released.load_state_dict(average.averaged_state(model))
        save_checkpoint(
            final,
            model=released,
            step=step,
            config=dataclasses.asdict(model_cfg),
            kind=KIND,
            extra={"train_config": dataclasses.asdict(cfg)},
        )
    tail = losses[-10:]
    result = {
        "checkpoint": str(final) if usable else None,
        "last_checkpoint": str(last),
        "params": params,
        "steps": step,
        "completed": completed,
        "stopped_by": stopped_by,
        "resumed_from_step": resumed_from,
        "train_seconds": seconds,
        "frames_per_s": frames_done * world / max(seconds, 1e-9),
        "tokens_per_s": frames_done * world * model_cfg.tokens_per_frame / max(seconds, 1e-9),
        "loss_first": loss_first,
        "loss_last": sum(tail) / len(tail) if tail else None,
        "loss_min": loss_min if math.isfinite(loss_min) else None,
        "nonfinite_skipped": skipped_total,
        "world_size": world,
        "model_config": dataclasses.asdict(model_cfg),
        "ranks_in_sync": _ranks_in_sync(model, device) if distributed else True,
    }
    if is_main:
        write_json(out_dir / "result.json", result, indent=2)
        if report is not None:
            report(result)
    return result


def config_from_json(obj: dict) -> tuple[DynamicsTrainConfig, list[Path], str | None]:
    """Parse the CLI JSON: preset + overrides + train stores (+ optional device)."""
    obj = dict(obj)
    preset = obj.pop("preset", None)
    stores = obj.pop("train_stores", None)
    latents_dir = obj.pop("latents_dir", None)
    device = obj.pop("device", None)
    if stores is None and latents_dir is not None:
        stores = sorted(p for p in Path(latents_dir).glob("*.zarr") if not p.name.startswith("."))  # no temps
    if not stores:
        raise ValueError("dynamics config: give 'train_stores' (list of latent stores) or 'latents_dir'")
    if preset:
        from ..presets import PRESETS  # the one registry (it imports this module: imported late)

        if preset not in PRESETS:
            raise ValueError(f"unknown dynamics preset {preset!r}; choose from {sorted(PRESETS)}")
    base = dataclasses.asdict(PRESETS[preset].dynamics) if preset else {}
    for key in ("model", "optim"):
        if key in obj:
            obj[key] = {**base.get(key, {}), **obj[key]}
    return DynamicsTrainConfig.from_dict({**base, **obj}), [Path(s) for s in stores], device


@contextlib.contextmanager
def distributed(device: str | None = None):
    """Join the process group when WORLD_SIZE > 1 (NCCL on CUDA, gloo on CPU), started by torchrun or by
    ahriuwu_core.dynamics.launch; yield this rank's device.

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
        # torchrun's env:// store, or the FileStore of ahriuwu_core.dynamics.launch (nothing listening).
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True, help="JSON file or inline JSON object")
    ap.add_argument("--out", required=True, help="output directory (resumes from OUT/last.pt)")
    ap.add_argument(
        "--outlive-parent",
        action="store_true",
        help="keep training when the launching process dies (default: checkpoint and stop)",
    )
    args = ap.parse_args(argv)
    text = args.config if args.config.lstrip().startswith("{") else Path(args.config).read_text()
    cfg, stores, device = config_from_json(json.loads(text))
    with distributed(device) as device:
        result = train_dynamics(stores, cfg, Path(args.out), device=device, exit_with_parent=not args.outlive_parent)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: result[k] for k in ("steps", "completed", "stopped_by", "loss_last", "params")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
