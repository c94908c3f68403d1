from dataclasses import asdict

import numpy as np
import pytest
import torch
import zarr

from ahriuwu_core.tokenizer import build_tokenizer, encode_video
from ahriuwu_core.tokenizer.encode import file_sha256
from ahriuwu_core.training.checkpoint import save_checkpoint

from ._tokenizer_stores import make_frames_store

TINY_TF = dict(
    image_size=16, patch_size=4, num_latents=4, latent_dim=6, d_model=32, n_layers=1, n_heads=2, out_tokens=2
)


@pytest.fixture()
def setup(tmp_path):
    torch.manual_seed(0)
    tok = build_tokenizer("transformer", TINY_TF).eval()
    ckpt = tmp_path / "tokenizer.pt"
    save_checkpoint(ckpt, model=tok, config=asdict(tok.cfg), kind="transformer")
    store = make_frames_store(tmp_path / "vid_a.zarr", num_frames=11, size=16)
    return tok, ckpt, store


def test_encode_video_store_contents(tmp_path, setup):
    tok, ckpt, store = setup
    out = tmp_path / "latents" / "vid_a.zarr"
    res = encode_video(store, ckpt, out, batch_frames=4, code_version="v1")
    assert res["num_frames"] == 11 and res["tokens"] == 2 and res["dim"] == 12
    g = zarr.open_group(str(out), mode="r")
    lat = np.asarray(g["latents"][:])
    assert lat.dtype == np.float16 and lat.shape == (11, 2, 12) and np.abs(lat).max() <= 1
    frames = torch.from_numpy(np.asarray(zarr.open_group(str(store))["frames"][:])).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        direct = tok.encode(frames[:, None])[:, 0].numpy().astype(np.float16)
    np.testing.assert_allclose(lat.astype(np.float32), direct.astype(np.float32), atol=2e-3)
    src = zarr.open_group(str(store), mode="r")
    assert np.array_equal(g["actions"][:], src["actions"][:]) and g["has_actions"][:].all()
    a = dict(g.attrs)
    assert a["tokenizer_sha256"] == file_sha256(ckpt) and a["tokenizer_code_version"] == "v1"
    assert a["tokenizer_kind"] == tok.kind and a["video_id"] == "vid_a"
    assert (a["num_frames"], a["tokens"], a["dim"]) == (11, 2, 12) and a["content_hash"] == res["content_hash"]
    assert [p.name for p in out.parent.iterdir()] == ["vid_a.zarr"]  # no temp stores left
    # batch size does not change the result (streaming is exact); re-encoding replaces the store
    res2 = encode_video(store, ckpt, out, batch_frames=64)
    assert res2["content_hash"] == res["content_hash"]
    assert [p.name for p in out.parent.iterdir()] == ["vid_a.zarr"]


def test_encode_video_bad_inputs(tmp_path, setup):
    tok, ckpt, store = setup
    out = tmp_path / "lat.zarr"
    with pytest.raises(FileNotFoundError, match="nope.zarr"):
        encode_video(tmp_path / "nope.zarr", ckpt, out)
    big = make_frames_store(tmp_path / "big.zarr", num_frames=3, size=32)
    with pytest.raises(ValueError, match="big.zarr"):
        encode_video(big, ckpt, out)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        encode_video(store, tmp_path / "missing.pt", out)
    assert not out.exists() and not list(tmp_path.glob(".lat*"))  # no temp store left either
