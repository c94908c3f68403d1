"""Tokenizer training: presets, build/load, frame-window sampling from zarr frames stores, the training loop
(AdamW + warmup/cosine, grad clipping, bf16 autocast on CUDA, exact resume from out_dir/last.pt, graceful
stop on SIGTERM/SIGUSR1 and when the launching process dies, one trainer per folder via out_dir/trainer.lock),
held-out evaluation and the collapse guard.

CLI: python -m ahriuwu_core.tokenizer.train --preset demo --frames A.zarr B.zarr --heldout C.zarr --out DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import zarr
from PIL import Image
from torch import nn

from ..checked_store import HashCheck
from ..checked_store import read as read_checked
from ..checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from ..frames import open_frames
from ..report import small_png_bytes
from ..run_control import run_folder_lock, stop_guards
from ..training import OptimConfig, Progress, RunningRMS, autocast_context, make_optimizer, make_scheduler
from .cnn import CNNTokenizer, CNNTokenizerConfig
from .losses import ReconstructionLoss, build_lpips
from .quality import attention_entropy, collapse_check, heldout_metrics, recon_strip, reconstruct
from .transformer import TransformerTokenizer, TransformerTokenizerConfig

MODEL_CLASSES = {
    "cnn": (CNNTokenizer, CNNTokenizerConfig),
    "transformer": (TransformerTokenizer, TransformerTokenizerConfig),
}


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


def model_config(kind: str, model_cfg=None):
    """The typed model config of a tokenizer kind: its defaults, a dict of its fields, or the config itself."""
    cfg_cls = MODEL_CLASSES[kind][1]
    if model_cfg is None:
        return cfg_cls()
    if isinstance(model_cfg, dict):
        unknown = set(model_cfg) - {f.name for f in dataclasses.fields(cfg_cls)}
        if unknown:
            raise ValueError(f"unknown {kind} tokenizer config fields {sorted(unknown)}")
        return cfg_cls(**model_cfg)
    if not isinstance(model_cfg, cfg_cls):
        raise ValueError(f"a {kind} tokenizer needs a {cfg_cls.__name__}, got {type(model_cfg).__name__}")
    return model_cfg


def code_version() -> str:
    """sha256 (first 16 hex) of the tokenizer package sources: changes whenever the model code changes."""
    h = hashlib.sha256()
    for p in sorted(Path(__file__).parent.glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def build_tokenizer(kind: str, model_cfg=None) -> nn.Module:
    if kind not in MODEL_CLASSES:
        raise ValueError(f"unknown tokenizer kind {kind!r} (expected one of {sorted(MODEL_CLASSES)})")
    return MODEL_CLASSES[kind][0](model_config(kind, model_cfg))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def load_tokenizer(path, device="cpu") -> nn.Module:
    ckpt = read_checkpoint(path)
    if ckpt.get("kind") not in MODEL_CLASSES or ckpt.get("config") is None:
        raise ValueError(f"{path} is not a tokenizer checkpoint (kind={ckpt.get('kind')!r})")
    model = build_tokenizer(ckpt["kind"], ckpt["config"])
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval()


# ---------------------------------------------------------------------------- data


def _game_mask(g: zarr.Group, path, H: int, W: int) -> np.ndarray:
    if "hud_mask" not in g:
        return np.ones((H, W), np.float32)
    m = np.asarray(g["hud_mask"][:])
    if m.shape != (H, W):
        raise ValueError(f"{path}: hud_mask shape {m.shape} != frame size {(H, W)}")
    return (m == 0).astype(np.float32)


class FrameWindowSampler:
    """Random windows of T consecutive frames from frames stores, chosen uniformly over all windows.
    Stores smaller than `memory_limit_bytes` in total are loaded into RAM once; otherwise windows are read
    from zarr. Its position is the numpy generator state (`state()` / `set_state()`), so resume is exact."""

    def __init__(self, stores, T: int, image_size: int, seed: int = 0, memory_limit_bytes: float = 2e9):
        if not stores:
            raise ValueError("no training frames stores given")
        self.T = T
        self.paths = [Path(p) for p in stores]
        self.groups = [open_frames(p) for p in self.paths]
        self.games, self.lengths = [], []
        for p, g in zip(self.paths, self.groups):
            shape = g["frames"].shape
            if len(shape) != 4 or shape[1:] != (image_size, image_size, 3):
                raise ValueError(
                    f"{p}: frames shape {shape} does not match the tokenizer's (T, {image_size}, {image_size}, 3)"
                )
            if shape[0] < T:
                raise ValueError(f"{p}: only {shape[0]} frames, fewer than frames_per_sample={T}")
            self.lengths.append(shape[0] - T + 1)
            self.games.append(_game_mask(g, p, image_size, image_size))
        total = sum(g["frames"].nbytes for g in self.groups)
        self.arrays = (
            [load_frames(p, g) for p, g in zip(self.paths, self.groups)]
            if total <= memory_limit_bytes
            else [g["frames"] for g in self.groups]
        )
        self.weights = np.array(self.lengths, np.float64) / sum(self.lengths)
        self.rng = np.random.default_rng(seed)

    def state(self):
        return self.rng.bit_generator.state

    def set_state(self, state):
        self.rng.bit_generator.state = state

    def random_frames(self, n: int, seed: int) -> torch.Tensor:
        """n single frames drawn with their own generator (not the sampler's) -> float (n,3,H,W)."""
        rng = np.random.default_rng(seed)
        vids = rng.choice(len(self.arrays), size=n, p=self.weights)
        x = np.stack([read_checked(self.paths[v], self.arrays[v], int(rng.integers(0, self.lengths[v]))) for v in vids])
        return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """-> frames float (B,T,3,H,W) in [0,1], game weights (B,1,1,H,W)."""
        vids = self.rng.choice(len(self.arrays), size=batch_size, p=self.weights)
        starts = [int(self.rng.integers(0, self.lengths[v])) for v in vids]
        x = np.stack([read_checked(self.paths[v], self.arrays[v], slice(s, s + self.T)) for v, s in zip(vids, starts)])
        game = np.stack([self.games[v] for v in vids])
        frames = torch.from_numpy(x).permute(0, 1, 4, 2, 3).float() / 255.0
        return frames, torch.from_numpy(game)[:, None, None]


def load_frames(path: Path, group) -> np.ndarray:
    """A whole frames array, read and verified against the store's content_hash."""
    frames = read_checked(path, group["frames"])
    check = HashCheck(path, group.attrs.get("content_hash"))
    check.update(frames)
    check.verify()
    return frames


def heldout_frames(frames_stores, n: int, image_size: int) -> list[tuple[Path, np.ndarray, np.ndarray | None]]:
    """n frames evenly spaced over the held-out stores -> [(path, frames (k,H,W,3) uint8, hud_mask)]."""
    if not frames_stores or n <= 0:
        return []
    groups = [(Path(p), open_frames(p)) for p in frames_stores]
    per = max(1, math.ceil(n / len(groups)))
    out = []
    for p, g in groups:
        arr = g["frames"]
        if tuple(arr.shape[1:]) != (image_size, image_size, 3):
            raise ValueError(f"{p}: held-out frames shape {arr.shape} does not match image_size {image_size}")
        idx = np.unique(np.linspace(0, arr.shape[0] - 1, per).round().astype(int))
        frames = np.stack([read_checked(p, arr, int(i)) for i in idx])
        hud = np.asarray(g["hud_mask"][:]) if "hud_mask" in g else None
        out.append((p, frames, hud))
    return out


# ---------------------------------------------------------------------------- training


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

    with stop_guards(log, exit_with_parent) as (stop, watch):
        for step in range(start + 1, cfg.steps + 1):
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
        extra={"train_config": _jsonable(asdict(cfg)), "code_version": code_version(), "train_seconds": train_seconds},
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


def main(argv=None):
    ap = argparse.ArgumentParser(description="Train a tokenizer on frames stores.")
    ap.add_argument("--preset", default="demo", help="a preset of ahriuwu_core.presets")
    ap.add_argument("--kind", default="", help="cnn or transformer (default: the preset's first)")
    ap.add_argument("--frames", nargs="+", required=True, help="training frames stores (.zarr)")
    ap.add_argument("--heldout", nargs="*", default=[], help="held-out frames stores (.zarr)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--outlive-parent",
        action="store_true",
        help="keep training when the launching process dies (default: checkpoint and stop)",
    )
    args = ap.parse_args(argv)
    from ..presets import get_preset  # the one registry (it imports this module: imported late)

    cfg = dataclasses.replace(get_preset(args.preset).tokenizer_config(args.kind))
    if args.steps:
        cfg.steps = args.steps
    res = train_tokenizer(
        args.frames, args.heldout, cfg, Path(args.out), device=args.device, exit_with_parent=not args.outlive_parent
    )
    res.pop("strip_png", None)
    print(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
