"""Dynamics (world model) training: shortcut forcing on latent windows, resumable, signal-aware, DDP-ready.

Outputs in the run folder: last.pt (resume state, rewritten every ckpt_every steps; the one before it kept as
last.prev.pt), dynamics.pt (final model), train_log.jsonl, result.json (the returned metrics), and trainer.lock while
training (one trainer per folder). Training again into the same folder resumes from last.pt, or last.prev.pt if
last.pt is damaged. The command line is `ahriuwu_core.cli.train_dynamics`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist

from ..data.files import write_json
from ..training.checkpoint import resume_checkpoint, save_checkpoint
from ..training.loss_norm import RunningRMS
from ..training.optim import WeightAverage, make_optimizer, make_scheduler
from ..training.precision import autocast_context
from ..training.progress import Progress
from ..training.run_control import run_folder_lock, stop_guards
from .data import OBJECTIVE_STREAM, LatentWindows, example_seed
from .distributed import all_agree, ranks_in_sync, sum_over_ranks
from .load import KIND
from .model import WorldModel
from .objective import shortcut_forcing_loss
from .prior import fit_least_squares
from .train_config import DynamicsTrainConfig


class NonFiniteLossError(RuntimeError):
    pass


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
                    "time_limited": hit_time_limit,  # a time-boxed run that ended here: a rerun trains no further
                    **({"ema": average.state_dict()} if average is not None else {}),
                },
            )
        if distributed:
            dist.barrier()

    # A finished run (its folder's key covers every input), time-boxed or not, trains no further step, so a rerun
    # on unchanged inputs writes the same dynamics.pt, byte for byte.
    finished = resumed_path is not None and (start >= cfg.steps or bool(extra.get("time_limited")))
    if finished:
        say(f"the run in {out_dir} finished at step {start}; no step to train")
        if start < cfg.steps:
            stopped_by, hit_time_limit = "time_limit", True
    step = start
    with stop_guards(say, exit_with_parent) as (stop, watch):
        for step in range(start + 1, (start if finished else cfg.steps) + 1):
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
                    reduce_sum=sum_over_ranks if distributed else None,
                )
            opt.zero_grad(set_to_none=True)
            ok = not all_agree(not bool(torch.isfinite(loss)), device)
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
            want_stop = all_agree(stop.should_stop(at_boundary=boundary), device)
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
            # the videos it learnt from, for the evaluation's leak check against what it scores
            extra={"train_config": dataclasses.asdict(cfg), "train_videos": [Path(s).stem for s in train_stores]},
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
        "ranks_in_sync": ranks_in_sync(model, device) if distributed else True,
    }
    if is_main:
        write_json(out_dir / "result.json", result, indent=2)
        if report is not None:
            report(result)
    return result
