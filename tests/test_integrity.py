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
from ahriuwu_core.dynamics.data import LatentWindows, open_latent_video
from ahriuwu_core.testing import media
from ahriuwu_core.tokenizer import build_tokenizer, encode_video
from ahriuwu_core.tokenizer.data import FrameWindowSampler, heldout_frames
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


@pytest.mark.parametrize("how", ["deleted", "truncated", "flipped"])
def test_a_damaged_latents_chunk_read_window_by_window_is_named(stores, how):
    """Stores too big for memory are read from zarr window by window during training (no whole-store hash):
    each window's read must still fail on a damaged chunk, naming the store."""
    _, _, latents = stores
    _damage(latents / "latents" / "c" / "0" / "0" / "0", how)  # the store's one time chunk: every window
    with pytest.raises(StoreDamaged) as err:
        data = LatentWindows([latents], stride=1, in_memory=False)
        assert not data.videos[0].in_memory
        data.batch(4, 8, seed=0, step=1)
    assert str(latents) in str(err.value) and "damaged" in str(err.value)


@pytest.mark.parametrize("how", ["deleted", "truncated", "flipped"])
@pytest.mark.parametrize("where", ["in_memory", "window_by_window"])
def test_a_damaged_frames_chunk_is_named_when_the_tokenizer_reads_it(stores, how, where):
    """The tokenizer's training reads (the sampler's windows and its PCA frames, whole-store loads or reads
    from zarr) and its held-out frames: a damaged chunk is an error naming the store."""
    store, _, _ = stores
    _damage(store / "frames" / "c" / "3" / "0" / "0" / "0", how)  # frames 24..31 of 60
    limit = 2e9 if where == "in_memory" else 0  # 0: too big for memory, read from zarr
    with pytest.raises(StoreDamaged) as err:
        sampler = FrameWindowSampler([store], T=4, image_size=16, seed=0, memory_limit_bytes=limit)
        for _ in range(8):  # 256 windows of the 57: some cover the damaged chunk
            sampler.sample(32)
    assert str(store) in str(err.value) and "damaged" in str(err.value)
    if where == "window_by_window" and how != "deleted":  # a sampler opened before the damage
        with pytest.raises(StoreDamaged, match=str(store)):
            sampler.random_frames(64, seed=1)
    with pytest.raises(StoreDamaged, match=str(store)):
        heldout_frames([store], 60, 16)  # every frame


def test_a_rewritten_frames_chunk_fails_the_content_hash_of_a_whole_store_load(stores):
    """A chunk rewritten with other valid pixels passes its checksum: loading the whole store for training
    checks the content hash and names the store."""
    import zarr

    store, _, _ = stores
    zarr.open_group(str(store), mode="r+")["frames"][24:32] = 7  # one whole chunk, validly re-encoded
    with pytest.raises(StoreDamaged, match=f"{store}: content does not match its content_hash"):
        FrameWindowSampler([store], T=4, image_size=16, seed=0)
