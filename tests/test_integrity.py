"""Damaged stores are errors that name the store, never data: a deleted, a truncated and a bit-flipped chunk in a
frames store (made by the real frames stage) and in a latents store (made by the real encode step)."""

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from ahriuwu_core.data import frames
from ahriuwu_core.data.checked_store import StoreDamaged
from ahriuwu_core.data.frames import FramesConfig
from ahriuwu_core.dynamics.data import open_latent_video
from ahriuwu_core.testing import media
from ahriuwu_core.tokenizer import build_tokenizer, encode_video
from ahriuwu_core.training.checkpoint import save_checkpoint

TINY_CNN = dict(image_size=16, channels=(8,), latent_dim=4)


def _damage(chunk: Path, how: str) -> None:
    data = chunk.read_bytes()
    if how == "deleted":
        chunk.unlink()
    elif how == "truncated":
        chunk.write_bytes(data[: len(data) // 2])
    else:  # one flipped bit in the middle of the compressed payload
        i = len(data) // 2
        chunk.write_bytes(data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1 :])


@pytest.fixture()
def stores(tmp_path):
    clip = media.make_clip(tmp_path / "v.mp4", seconds=3.0, fps=20, width=32, height=32, pattern="moving")
    store = tmp_path / "frames" / "v.zarr"
    frames.extract_frames(clip.path, store, FramesConfig(width=16, height=16, chunk_frames=8))
    torch.manual_seed(0)
    tok = build_tokenizer("cnn", TINY_CNN).eval()
    ckpt = tmp_path / "tokenizer.pt"
    save_checkpoint(ckpt, model=tok, config=asdict(tok.cfg), kind="cnn")
    latents = tmp_path / "latents" / "v.zarr"
    encode_video(store, ckpt, latents, batch_frames=8)
    return store, ckpt, latents


@pytest.mark.parametrize("how", ["deleted", "truncated", "flipped"])
def test_a_damaged_frames_chunk_is_named_and_never_encoded(tmp_path, stores, how):
    store, ckpt, _ = stores
    _damage(store / "frames" / "c" / "3" / "0" / "0" / "0", how)
    out = tmp_path / "latents" / "again.zarr"
    with pytest.raises(StoreDamaged) as err:
        encode_video(store, ckpt, out, batch_frames=8)
    msg = str(err.value)
    assert str(store) in msg and "damaged" in msg
    if how == "deleted":
        assert "frames/c/3/0/0/0" in msg and "missing" in msg
    assert not out.exists() and not list(out.parent.glob(".*tmp-*"))  # nothing half-written is left


@pytest.mark.parametrize("how", ["deleted", "truncated", "flipped"])
def test_a_damaged_latents_chunk_is_named_and_never_trained_on(stores, how):
    _, _, latents = stores
    intact = open_latent_video(latents).latents
    assert intact.shape[0] == 60 and np.isfinite(intact.astype(np.float32)).all()
    _damage(latents / "latents" / "c" / "0" / "0" / "0", how)
    with pytest.raises(StoreDamaged) as err:
        open_latent_video(latents)  # what dynamics training reads every store through
    assert str(latents) in str(err.value)
    if how == "deleted":
        assert "latents/c/0/0/0" in str(err.value)
