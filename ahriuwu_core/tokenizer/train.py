"""Tokenizer training: the training loop (AdamW + warmup/cosine, grad clipping, bf16 autocast on CUDA, exact resume
from out_dir/last.pt, graceful stop on SIGTERM/SIGUSR1 and when the launching process dies, one trainer per folder
via out_dir/trainer.lock), held-out evaluation and the collapse guard. The command line is
`ahriuwu_core.cli.train_tokenizer`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..images.pictures import small_png_bytes
from ..training.checkpoint import load_checkpoint, save_checkpoint
from ..training.loss_norm import RunningRMS
from ..training.optim import OptimConfig, make_optimizer, make_scheduler
from ..training.precision import autocast_context
from ..training.progress import Progress
from ..training.run_control import run_folder_lock, stop_guards
from .build import MODEL_CLASSES, build_tokenizer, code_version, count_params, model_config
from .cnn import CNNTokenizerConfig
from .data import FrameWindowSampler, heldout_frames
from .losses import ReconstructionLoss, build_lpips
from .quality import attention_entropy, collapse_check, heldout_metrics, recon_strip, reconstruct
from .transformer import TransformerTokenizerConfig


@dataclass
class TokenizerTrainConfig:
    kind: str = "cnn"  # "cnn" | "transformer"
    model: CNNTokenizerConfig | TransformerTokenizerConfig | None = None  # the kind's config; None: its defaults
    steps: int = 1000
    batch_size: int = 16
    frames_per_sample: int = 1  # consecutive frames per sample (T)
    lpips_weight: float = 0.2
    lpips_net: str = "alex"
    lpips_frames: int = 0  # LPIPS on a random subset of this many frames per batch (0 = all)
    lpips_pretrained: bool = True  # False: random LPIPS backbone (tests only)
    lpips_start_step: int = 0  # LPIPS term enabled from this step on (MSE-only warm start)
    mask_max: float = 0.9  # MAE: per-frame drop rate ~ U(0, current max) (transformer only)
    mask_warmup_steps: int = 0  # the max ramps linearly 0 -> mask_max over these steps
    mask_start_step: int = 0  # ... starting at this step (before it: no masking)
    optim: OptimConfig = field(default_factory=OptimConfig)
    rms_decay: float = 0.99
    log_every: int = 10
    ckpt_every: int = 200
    seed: int = 0
    eval_frames: int = 64  # held-out frames (evenly spaced over the held-out stores)
    max_train_seconds: float = 0.0  # >0: stop (and finish normally) once training took this long
    pca_init_frames: int = 0  # CNN with linear_skip: PCA-initialise the linear path from this many frames

    def __post_init__(self):
        if isinstance(self.optim, dict):
            self.optim = OptimConfig(**self.optim)
        if self.kind not in MODEL_CLASSES:
            raise ValueError(f"unknown tokenizer kind {self.kind!r} (expected one of {sorted(MODEL_CLASSES)})")
        self.model = model_config(self.kind, self.model)  # a dict (from JSON) becomes the kind's typed config


def evaluate_tokenizer(model: nn.Module, held, cfg: TokenizerTrainConfig, lpips: bool = True) -> dict:
    if not held:
        return {}
    psnr, ssim, lp = [], [], []
    for _path, frames, hud in held:
        m = heldout_metrics(model, frames, hud, lpips_net=cfg.lpips_net, lpips=lpips)
        psnr.append(m["psnr"])
        ssim.append(m["ssim"])
        if "lpips" in m:
            lp.append(m["lpips"])
    all_frames = np.concatenate([f for _, f, _ in held])
    probe = all_frames[:: max(1, len(all_frames) // 32)]
    passed, details = collapse_check(model, probe)
    strip_frames = all_frames[:: max(1, len(all_frames) // 8)][:8]
    _, strip_recon = reconstruct(model, strip_frames)
    out = {
        "heldout_psnr": float(np.mean(np.concatenate(psnr))),
        "heldout_ssim": float(np.mean(np.concatenate(ssim))),
        "heldout_lpips": float(np.mean(np.concatenate(lp))) if lp else None,
        "heldout_frames": int(len(all_frames)),
        "collapse_passed": passed,
        "collapse_recon_ratio": details["recon_ratio"],
        "collapse_latent_ratio": details["latent_ratio"],
        # what the UI shows: ground truth (top) over reconstruction, and per-layer attention entropy
        "strip_png": small_png_bytes(Image.fromarray(recon_strip(strip_frames, strip_recon)), max_width=512),
        "attention_entropy": attention_entropy(model, probe[:8]),
    }
    return out


def _mask_ratio(cfg: TokenizerTrainConfig, step: int) -> float:
    if cfg.mask_max <= 0 or step < cfg.mask_start_step:
        return 0.0
    if cfg.mask_warmup_steps <= 0:
        return cfg.mask_max
    return cfg.mask_max * min(1.0, (step - cfg.mask_start_step) / cfg.mask_warmup_steps)


def train_tokenizer(
    train_stores,
    heldout_stores,
    cfg: TokenizerTrainConfig,
    out_dir,
    device="cpu",
    log=print,
    lpips_model: nn.Module | None = None,
    evaluate: bool = True,
    exit_with_parent: bool = True,
) -> dict:
    """Train (or resume from out_dir/last.pt), write out_dir/tokenizer.pt atomically and evaluate on the held-out
    stores. A SIGTERM/SIGUSR1 stop leaves last.pt and returns {"completed": False, ...} without tokenizer.pt.

    Holds out_dir/trainer.lock throughout: a second trainer on the folder raises files.LockHeld. With
    `exit_with_parent`, the death of the parent process stops training after the current step, checkpointing
    ({"stopped_by": "parent_died"})."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with run_folder_lock(out_dir, log=log):
        return _train(
            train_stores,
            heldout_stores,
            cfg,
            out_dir,
            torch.device(device),
            log,
            lpips_model,
            evaluate,
            exit_with_parent,
        )


def _train(train_stores, heldout_stores, cfg, out_dir, device, log, lpips_model, evaluate, exit_with_parent):
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = build_tokenizer(cfg.kind, cfg.model).to(device)
    n_params = count_params(model)
    opt = make_optimizer(model, cfg.optim)
    sched = make_scheduler(opt, cfg.optim, cfg.steps)
    rms = RunningRMS(cfg.rms_decay)
    image_size = model.cfg.image_size
    sampler = FrameWindowSampler(train_stores, cfg.frames_per_sample, image_size, seed=cfg.seed)
    if cfg.lpips_weight > 0 and lpips_model is None:
        lpips_model = build_lpips(cfg.lpips_net, cfg.lpips_pretrained, device)
    loss_fn = ReconstructionLoss(cfg.lpips_weight, lpips_model, cfg.lpips_frames, rms)
    mse_only = ReconstructionLoss(0.0, None, 0, rms)
    if cfg.pca_init_frames > 0 and getattr(model.cfg, "linear_skip", False):
        # Own RNG, done before any resume: a resumed run overwrites these weights, an uninterrupted one
        # sees the same init, and the sampler's position is untouched.
        frames = sampler.random_frames(cfg.pca_init_frames, seed=cfg.seed + 7919).to(device)
        explained = model.init_linear_from_data(frames)
        log(f"tokenizer: PCA init of the linear path from {len(frames)} frames ({explained:.1%} variance kept)")
    last = out_dir / "last.pt"
    start, prior_seconds = 0, 0.0
    ckpt_meta = dict(config=asdict(model.cfg), kind=cfg.kind)
    if last.exists():
        info = load_checkpoint(last, model=model, optimizer=opt, scheduler=sched, log=log)
        start = info["step"]
        rms.load_state_dict(info["extra"]["rms"])
        sampler.set_state(info["data_position"])
        prior_seconds = float(info["extra"].get("train_seconds", 0.0))
        log(f"resumed tokenizer training from {last} at step {start}")
    # A finished run (its folder's key covers every input) trains no further step, so a rerun on unchanged inputs
    # writes the same tokenizer.pt, byte for byte: same data version, nothing downstream goes stale.
    finished = start >= cfg.steps or (cfg.max_train_seconds > 0 and prior_seconds >= cfg.max_train_seconds)
    if start and finished:
        log(f"tokenizer: the run in {out_dir} finished at step {start}; no step to train")
    log(
        f"tokenizer {cfg.kind}: {n_params:,} parameters, {model.num_tokens} tokens x {model.token_dim}, "
        f"{cfg.steps} steps of {cfg.batch_size}x{cfg.frames_per_sample} frames on {device}"
    )
    frames_per_step = cfg.batch_size * cfg.frames_per_sample
    progress = Progress(
        cfg.steps,
        log=log,
        jsonl_path=out_dir / "train_log.jsonl",
        every=cfg.log_every,
        start_step=start,
        items_per_step=frames_per_step,
        prefix="tokenizer ",
        tensorboard_dir=out_dir,
    )
    t0 = time.monotonic()
    cpu0 = time.process_time()
    step = start
    stopped = ""  # what stopped training early: a StopRequested mode, or "parent_died"
    model.train()

    def save(step_):
        save_checkpoint(
            last,
            model=model,
            optimizer=opt,
            scheduler=sched,
            step=step_,
            data_position=sampler.state(),
            extra={"rms": rms.state_dict(), "train_seconds": prior_seconds + time.monotonic() - t0},
            **ckpt_meta,
        )

    step = start
    with stop_guards(log, exit_with_parent) as (stop, watch):
        for step in range(start + 1, (start if finished else cfg.steps) + 1):
            x, game = sampler.sample(cfg.batch_size)
            x, game = x.to(device, non_blocking=True), game.to(device)
            with autocast_context(device):
                recon, _ = model(x, mask_ratio_max=_mask_ratio(cfg, step))
            fn = loss_fn if step >= cfg.lpips_start_step else mse_only
            loss, stats = fn(recon.float(), x, game)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            opt.step()
            sched.step()
            progress.update(
                step,
                **stats,
                psnr=-10 * math.log10(max(stats["mse"], 1e-10)),
                grad_norm=float(gnorm),
                lr=sched.get_last_lr()[0],
                mask=_mask_ratio(cfg, step),
            )
            over_time = cfg.max_train_seconds > 0 and prior_seconds + time.monotonic() - t0 > cfg.max_train_seconds
            boundary = step % cfg.ckpt_every == 0 or step == cfg.steps
            if boundary or stop.should_stop(boundary) or over_time:
                save(step)
            if over_time:
                log(f"tokenizer: max_train_seconds={cfg.max_train_seconds} reached at step {step}; finishing")
                break
            if stop.should_stop(boundary):
                stopped = "parent_died" if watch and watch.orphaned else stop.mode
                break
    progress.close()
    train_seconds = prior_seconds + time.monotonic() - t0
    result = {
        "steps": step,
        "params": n_params,
        "train_seconds": train_seconds,
        "completed": not stopped,
        "train_cpu_seconds": time.process_time() - cpu0,  # this process only (wall time varies with load)
        "train_frames_per_s": (step - start) * frames_per_step / max(1e-9, time.monotonic() - t0),
        "kind": cfg.kind,
        "tokens": model.num_tokens,
        "dim": model.token_dim,
        "checkpoint": None,
        "stopped_by": stopped or None,
    }
    if stopped:
        result["checkpoint"] = str(last)
        return result
    final = out_dir / "tokenizer.pt"
    model.eval()
    save_checkpoint(
        final,
        model=model,
        step=step,
        extra={  # no timing: a rerun republishes the same bytes
            "train_config": _jsonable(asdict(cfg)),
            "code_version": code_version(),
            "train_videos": [Path(s).stem for s in train_stores],
        },
        **ckpt_meta,
    )
    result["checkpoint"] = str(final)
    if evaluate:
        t_eval = time.monotonic()
        # Without a held-out video the quality figures and the collapse check use training frames, and say so:
        # the check must still run (a collapsed tokenizer is as bad on one video as on many).
        held = heldout_frames(heldout_stores or train_stores, cfg.eval_frames, image_size)
        result.update(evaluate_tokenizer(model, held, cfg, lpips=cfg.lpips_pretrained))
        result["eval_frames_from"] = "heldout" if heldout_stores else "train (no held-out video)"
        result["eval_seconds"] = time.monotonic() - t_eval
        log(
            "tokenizer held-out: "
            + ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in result.items()
                if k.startswith(("heldout", "collapse"))
            )
        )
    return result


def _jsonable(x):
    return json.loads(json.dumps(x, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))
