"""Encode a frames store into a latents store (float16, (T, N, D)), streaming `batch_frames` frames at a time
so memory is bounded whatever the video length. Each frame is encoded on its own (T=1 context), the same
way every training window's first frame is seen. Written to a temp store beside the target, then renamed
(`files.atomic_path`). The store records the sha256 of the tokenizer file that encoded it, read before the model
is loaded from that same file (a link to the current model is resolved first), and `encoded_with` reads it back."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import torch
import zarr

from ..data.checked_store import HashCheck, create_array
from ..data.checked_store import read as read_checked
from ..data.files import atomic_path
from ..data.frames import open_frames
from ..data.manifest import file_sha256
from ..training.precision import autocast_context
from .build import code_version as tokenizer_code_version
from .build import load_tokenizer


@torch.no_grad()
def encode_frames(model, frames: torch.Tensor) -> torch.Tensor:
    """Frames float (B, T, 3, H, W) in [0, 1] -> latents float32 (B, T, N, D), exactly as the latents stores
    hold them: each frame encoded on its own (T=1 context) and rounded to float16. Evaluation clips go through
    this too, so the world model sees the same latents it was trained on."""
    B, T = frames.shape[:2]
    with autocast_context(frames.device):
        z = model.encode(frames.reshape(B * T, 1, *frames.shape[2:]))
    return z[:, 0].float().half().float().reshape(B, T, *z.shape[2:])


@torch.no_grad()
def encode_video(
    frames_store,
    tokenizer_path,
    out_store,
    batch_frames: int = 64,
    device="cpu",
    code_version: str = "",
    tokenizer=None,
) -> dict:
    frames_store, out_store = Path(frames_store), Path(out_store)
    tokenizer_path = Path(tokenizer_path).resolve()  # the model file itself, never a link a publish may switch
    tokenizer_sha = file_sha256(tokenizer_path) if tokenizer_path.is_file() else ""
    t0 = time.monotonic()
    src = open_frames(frames_store)
    frames = src["frames"]
    if len(frames.shape) != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{frames_store}: frames must be (T,H,W,3), got {frames.shape}")
    model = tokenizer if tokenizer is not None else load_tokenizer(tokenizer_path, device)
    model.eval()
    size = model.cfg.image_size
    T = frames.shape[0]
    if tuple(frames.shape[1:3]) != (size, size):
        raise ValueError(
            f"{frames_store}: frames are {frames.shape[1]}x{frames.shape[2]}, "
            f"tokenizer {tokenizer_path} expects {size}x{size}"
        )
    N, D = model.num_tokens, model.token_dim
    dev = torch.device(device)
    with atomic_path(out_store) as tmp:
        g = zarr.open_group(str(tmp), mode="w")
        chunk_t = max(1, min(T, 64))
        lat = create_array(g, "latents", shape=(T, N, D), dtype="float16", chunks=(chunk_t, N, D))
        n_comp = src["actions"].shape[1] if "actions" in src else 0
        acts = create_array(
            g, "actions", shape=(T, n_comp), dtype="int16", chunks=(max(1, min(T, 4096)), max(1, n_comp))
        )
        has = create_array(g, "has_actions", shape=(T,), dtype="bool", chunks=(max(1, min(T, 4096)),))
        if "actions" in src:
            acts[:] = np.asarray(src["actions"][:], dtype=np.int16)
        if "has_actions" in src:
            has[:] = np.asarray(src["has_actions"][:], dtype=bool)
        h = hashlib.sha256()
        source = HashCheck(frames_store, src.attrs.get("content_hash"))  # never encode a damaged store
        for i in range(0, T, batch_frames):
            chunk = read_checked(frames_store, frames, slice(i, i + batch_frames))
            source.update(chunk)
            x = torch.from_numpy(chunk).to(dev)
            x = x.permute(0, 3, 1, 2).float().div_(255.0)[None]  # (1, b, 3, H, W)
            z16 = encode_frames(model, x)[0].cpu().numpy().astype(np.float16)
            lat[i : i + len(z16)] = z16
            h.update(z16.tobytes())
        source.verify()
        content_hash = h.hexdigest()
        g.attrs.update(
            {
                "video_id": src.attrs.get("video_id", frames_store.stem),
                "tokenizer_sha256": tokenizer_sha,
                "tokenizer_code_version": code_version or tokenizer_code_version(),
                "tokenizer_kind": getattr(model, "kind", ""),
                "num_frames": int(T),
                "tokens": int(N),
                "dim": int(D),
                "content_hash": content_hash,
                "frames_content_hash": src.attrs.get("content_hash", ""),
                "action_components": list(src.attrs.get("action_components", [])),
                "action_num_classes": list(src.attrs.get("action_num_classes", [])),
            }
        )
    return {
        "num_frames": int(T),
        "tokens": int(N),
        "dim": int(D),
        "content_hash": content_hash,
        "seconds": time.monotonic() - t0,
    }


def encoded_with(stores, tokenizer_sha: str) -> tuple[list[Path], dict[str, str]]:
    """The latent `stores` the tokenizer `tokenizer_sha` encoded, and every other one by video with why it is not
    (no latents yet, or another tokenizer's: a re-encode that failed or has not run)."""
    used, left_out = [], {}
    for store in map(Path, stores):
        if not store.exists():
            left_out[store.stem] = "no latents"
            continue
        sha = zarr.open_group(str(store), mode="r").attrs.get("tokenizer_sha256", "")
        if sha == tokenizer_sha:
            used.append(store)
        else:
            left_out[store.stem] = f"encoded by tokenizer {sha[:16] or 'unknown'}, not {tokenizer_sha[:16]}"
    return used, left_out
