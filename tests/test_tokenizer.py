import math

import numpy as np
import pytest
import torch
from torch import nn

from ahriuwu_core.presets import get_preset
from ahriuwu_core.tokenizer import (
    attention_entropy,
    build_tokenizer,
    collapse_check,
    count_params,
    recon_strip,
)
from ahriuwu_core.tokenizer.layers import apply_rope, rope_angles
from ahriuwu_core.tokenizer.losses import ReconstructionLoss, masked_mse
from ahriuwu_core.tokenizer.transformer import decoder_mask, encoder_mask, latent_cells, latent_grid_positions

TINY_CNN = dict(image_size=16, channels=(8, 16), latent_dim=4, groups=4)
TINY_TF = dict(
    image_size=16, patch_size=4, num_latents=4, latent_dim=6, d_model=32, n_layers=2, n_heads=2, softcap=20.0
)


def test_shapes_and_ranges_both_kinds():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 3, 16, 16)
    for kind, cfg, tokens, dim in (
        ("cnn", TINY_CNN, 16, 4),
        ("transformer", TINY_TF, 4, 6),
        ("transformer", {**TINY_TF, "out_tokens": 2}, 2, 12),
    ):
        tok = build_tokenizer(kind, cfg)
        z = tok.encode(x)
        assert z.shape == (2, 3, tokens, dim) and (tok.num_tokens, tok.token_dim) == (tokens, dim)
        assert z.abs().max() <= 1.0
        y = tok.decode(z)
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    with pytest.raises(ValueError, match="frames must be"):
        build_tokenizer("cnn", TINY_CNN).encode(torch.rand(1, 1, 3, 8, 8))
    with pytest.raises(ValueError, match="unknown tokenizer kind"):
        build_tokenizer("vqgan", {})
    with pytest.raises(ValueError, match="bogus"):
        build_tokenizer("cnn", {"bogus": 1})


def test_masks_hand_checked():
    # T=2 frames, P=2 patches, L=1 latent: order per frame [p, p, l]
    m = encoder_mask(2, 2, 1).int().tolist()
    assert m == [
        [1, 1, 1, 0, 0, 0],  # patch f0: own frame
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],  # latent f0: own patches, own latent
        [0, 0, 0, 1, 1, 1],  # patch f1: own frame only
        [0, 0, 0, 1, 1, 1],
        [0, 0, 1, 1, 1, 1],  # latent f1: own patches, latents of f0 and f1 (not f0 patches)
    ]
    # decoder order per frame [l, q, q]
    d = decoder_mask(2, 1, 2).int().tolist()
    assert d == [
        [1, 0, 0, 0, 0, 0],  # latent f0: latents <= f0
        [1, 1, 1, 0, 0, 0],  # query f0: own queries + latents <= f0
        [1, 1, 1, 0, 0, 0],
        [1, 0, 0, 1, 0, 0],  # latent f1: latents f0, f1
        [1, 0, 0, 1, 1, 1],  # query f1: latents f0,f1 + own queries (never f0's queries)
        [1, 0, 0, 1, 1, 1],
    ]


@pytest.mark.parametrize("cell_skip", [False, True])
def test_transformer_is_causal_in_time(cell_skip):
    torch.manual_seed(0)
    tok = build_tokenizer("transformer", {**TINY_TF, "cell_skip": cell_skip}).eval()
    x = torch.rand(1, 3, 3, 16, 16)
    x2 = x.clone()
    x2[:, 2] = torch.rand(3, 16, 16)  # change frame t+1 = 2
    z, z2 = tok.encode(x), tok.encode(x2)
    assert torch.equal(z[:, :2], z2[:, :2])
    assert not torch.allclose(z[:, 2], z2[:, 2])
    r, r2 = tok.decode(z), tok.decode(z2)
    assert torch.allclose(r[:, :2], r2[:, :2], atol=1e-6)
    assert not torch.allclose(r[:, 2], r2[:, 2])
    # And the past does matter for the latents (temporal attention is live): change frame 0.
    x3 = x.clone()
    x3[:, 0] = torch.rand(3, 16, 16)
    assert not torch.allclose(tok.encode(x3)[:, 1], z[:, 1])


def test_latents_sit_on_the_patch_grid():
    # 4x4 patch grid: 16 latents -> one per patch, 4 latents -> centres of 2x2 cells, 32 -> two per patch,
    # 5 latents (no grid) -> all at the centre
    assert latent_grid_positions(16, 4).tolist() == [[r, c] for r in range(4) for c in range(4)]
    assert latent_grid_positions(4, 4).tolist() == [[0.5, 0.5], [0.5, 2.5], [2.5, 0.5], [2.5, 2.5]]
    assert latent_grid_positions(32, 4)[16:].tolist() == latent_grid_positions(16, 4).tolist()
    assert latent_grid_positions(5, 4).tolist() == [[1.5, 1.5]] * 5
    cells = latent_cells(4, 4)
    assert torch.allclose(cells.sum(1), torch.ones(4))
    assert cells[1].nonzero().flatten().tolist() == [2, 3, 6, 7]  # latent 1 = top-right 2x2 block of patches
    assert torch.equal(latent_cells(16, 4), torch.eye(16))
    assert torch.allclose(latent_cells(5, 4), torch.full((5, 16), 1 / 16))


def test_cell_skip_makes_latents_local_from_the_start():
    """With cell_skip a latent starts from its own cell's patches: at init, changing one corner of the image
    moves that corner's latent far more than the others (without it, every latent moves about alike)."""
    x = torch.rand(1, 1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    x2 = x.clone()
    x2[..., :8, :8] = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))  # top-left 2x2 patches
    ratios = {}
    for skip in (False, True):
        torch.manual_seed(0)
        tok = build_tokenizer("transformer", {**TINY_TF, "cell_skip": skip}).eval()
        with torch.no_grad():
            change = (tok.encode(x) - tok.encode(x2)).abs().mean(-1)[0, 0]  # per latent (4 latents, 2x2 cells)
        ratios[skip] = float(change[0] / change[1:].mean())
    assert ratios[True] > 3.0 and ratios[False] < 2.0, ratios


def test_mae_masking_changes_training_pass_only():
    torch.manual_seed(0)
    tok = build_tokenizer("transformer", TINY_TF)
    x = torch.rand(2, 1, 3, 16, 16)
    r0, z0 = tok(x, mask_ratio_max=0.0)
    assert torch.allclose(tok.decode_raw(tok.from_output(tok.encode(x))), r0)
    torch.manual_seed(1)
    _, z1 = tok(x, mask_ratio_max=0.9)
    assert not torch.allclose(z0, z1)
    z0.sum().backward()
    assert tok.mask_token.grad is None or tok.mask_token.grad.abs().sum() == 0  # unused without masking


def test_param_count_linear_in_tokens():
    def n(num_latents, image_size):
        return count_params(
            build_tokenizer("transformer", {**TINY_TF, "num_latents": num_latents, "image_size": image_size})
        )

    d = TINY_TF["d_model"]
    # each latent adds exactly 2*d (encoder latent token + decoder latent position), nothing quadratic
    assert n(8, 16) - n(4, 16) == 4 * 2 * d
    assert n(16, 16) - n(8, 16) == 8 * 2 * d
    # each patch adds exactly 2*d (encoder position + decoder query): 16x16 -> 32x32 is 48 more patches
    assert n(4, 32) - n(4, 16) == 48 * 2 * d


def test_preset_param_counts_exact():
    counts = {}
    with torch.device("meta"):
        for name, cfg in {
            "demo": get_preset("demo").tokenizer_config("cnn"),
            "demo_transformer": get_preset("demo").tokenizer_config("transformer"),
            "seed": get_preset("seed").tokenizer_config("cnn"),
            "seed_transformer": get_preset("seed").tokenizer_config("transformer"),
        }.items():
            tok = build_tokenizer(cfg.kind, cfg.model)
            counts[name] = (count_params(tok), tok.num_tokens, tok.token_dim)
    assert counts == {
        "demo": (766_400, 256, 16),
        "demo_transformer": (1_278_688, 64, 32),
        "seed": (15_891_075, 256, 256),
        "seed_transformer": (172_297_744, 256, 32),
    }


def test_rope_rotation_preserves_norm_and_relative():
    hd = 16
    pos = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    ang = rope_angles(pos, hd)
    assert ang.shape == (2, 8)
    x = torch.randn(1, 1, 2, hd)
    y = apply_rope(x, ang.cos(), ang.sin())
    assert torch.allclose(x.norm(dim=-1), y.norm(dim=-1), atol=1e-5)
    # relative property: <R(a)q, R(b)k> depends only on a-b
    q, k = torch.randn(hd), torch.randn(hd)

    def dot(pa, pb):
        a = rope_angles(torch.tensor([pa]), hd)
        b = rope_angles(torch.tensor([pb]), hd)
        return (
            apply_rope(q.view(1, 1, 1, hd), a.cos(), a.sin()) * apply_rope(k.view(1, 1, 1, hd), b.cos(), b.sin())
        ).sum()

    assert torch.allclose(dot([1.0, 2.0, 3.0], [0.0, 1.0, 1.0]), dot([5.0, 7.0, 9.0], [4.0, 6.0, 7.0]), atol=1e-4)


class _Identityish(nn.Module):
    """Stub tokenizer: latents = 2x-downsampled pixels, decode = upsample. Not collapsed by construction."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.num_tokens, self.token_dim = 64, 3

    def encode(self, x):
        B, T = x.shape[:2]
        z = torch.nn.functional.avg_pool2d(x.flatten(0, 1), 2) * 2 - 1
        return z.flatten(2).transpose(1, 2).reshape(B, T, 64, 3)

    def decode(self, z):
        B, T = z.shape[:2]
        img = (z.reshape(B * T, 64, 3).transpose(1, 2).reshape(B * T, 3, 8, 8) + 1) / 2
        return torch.nn.functional.interpolate(img, scale_factor=2).reshape(B, T, 3, 16, 16)


def test_collapse_check_detects_mean_image():
    rng = np.random.default_rng(0)
    # 2x2-constant blocks: the stub reconstructs them exactly
    frames = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8).repeat(2, axis=1).repeat(2, axis=2)
    ok, det = collapse_check(_Identityish(), frames)
    assert ok and det["recon_ratio"] == pytest.approx(1.0, abs=0.01)
    tok = build_tokenizer("cnn", TINY_CNN)
    last = tok.out_conv
    nn.init.zeros_(last.weight)  # decoder now outputs its bias: the same image for every input
    ok, det = collapse_check(tok, frames)
    assert not ok and det["recon_ratio"] < 1e-6
    enc_last = tok.encoder[-1]
    nn.init.zeros_(enc_last.weight)  # encoder collapse too: identical latents
    _, det = collapse_check(tok, frames)
    assert det["latent_ratio"] < 1e-6
    with pytest.raises(ValueError, match="identical"):
        collapse_check(_Identityish(), np.repeat(frames[:1], 3, axis=0))


def test_attention_entropy_per_layer():
    torch.manual_seed(0)
    tok = build_tokenizer("transformer", TINY_TF)
    ent = attention_entropy(tok, torch.rand(3, 3, 16, 16))
    assert set(ent) == {"encoder.0", "encoder.1", "decoder.0", "decoder.1"}
    # per-frame sequence is 16 patches + 4 latents = 20 tokens: entropy within [0, log 20]
    assert all(0 < v <= math.log(20) + 1e-6 for v in ent.values())
    # with all-zero q/k projections attention is uniform over each query's allowed keys
    for blk in tok.encoder:
        nn.init.zeros_(blk.attn.qkv.weight)
    ent = attention_entropy(tok, torch.rand(2, 3, 16, 16))
    # encoder (T=1): every token sees all 20 tokens except patches which also see all 20 -> log 20
    assert ent["encoder.0"] == pytest.approx(math.log(20), abs=1e-5)
    assert attention_entropy(build_tokenizer("cnn", TINY_CNN), torch.rand(2, 3, 16, 16)) == {}
    assert not any(m.record_entropy for m in tok.attention_modules().values())


def test_recon_strip_layout():
    gt = np.zeros((3, 4, 5, 3), np.uint8)
    rec = np.full((3, 4, 5, 3), 255, np.uint8)
    strip = recon_strip(gt, rec)
    assert strip.shape == (8, 15, 3) and strip.dtype == np.uint8
    assert (strip[:4] == 0).all() and (strip[4:] == 255).all()


def test_masked_mse_and_loss_hand_values():
    recon = torch.zeros(1, 1, 3, 2, 2)
    target = torch.zeros(1, 1, 3, 2, 2)
    target[..., 0, 0] = 1.0  # error 1 on pixel (0,0) in all channels
    target[..., 1, 1] = 2.0  # error 4 on pixel (1,1): a HUD pixel
    game = torch.tensor([[1.0, 1.0], [1.0, 0.0]]).view(1, 1, 1, 2, 2)
    assert float(masked_mse(recon, target, game)) == pytest.approx(3 / 9)  # (3*1) / (3 pixels * 3 ch)
    assert float(masked_mse(recon, target)) == pytest.approx((3 + 12) / 12)
    loss_fn = ReconstructionLoss(lpips_weight=0.0)
    loss, stats = loss_fn(recon, target, game)
    assert stats["mse"] == pytest.approx(1 / 3)
    assert float(loss) == pytest.approx(1.0, rel=1e-4)  # first call: term / its own RMS


def test_cnn_linear_skip_pca_init_reconstructs_low_rank_data():
    torch.manual_seed(0)
    cfg = dict(
        image_size=16, channels=(), patch=4, mid_channels=16, mid_blocks=1, latent_dim=6, groups=4, linear_skip=True
    )
    tok = build_tokenizer("cnn", cfg)
    assert (tok.num_tokens, tok.token_dim) == (16, 6)
    # every 4x4 block is a mix of 3 fixed block patterns (rank 3 < latent_dim) -> PCA keeps everything
    basis = torch.rand(3, 3, 4, 4)
    coef = torch.rand(40, 4, 4, 3)
    blocks = torch.einsum("nijk,kcab->nicjab", coef, basis) / 3  # (n, gi, c, gj, a, b)
    frames = blocks.permute(0, 2, 1, 4, 3, 5).reshape(40, 3, 16, 16)
    with torch.no_grad():
        before = float((tok.decode(tok.encode(frames[:, None]))[:, 0] - frames).pow(2).mean())
    explained = tok.init_linear_from_data(frames[:30])
    assert explained == pytest.approx(1.0, abs=1e-6)
    with torch.no_grad():
        z = tok.encode(frames[30:, None])
        after = float((tok.decode(z)[:, 0] - frames[30:]).pow(2).mean())
    assert after < 1e-4 < before and z.abs().max() < 1
    with pytest.raises(ValueError, match="linear_skip"):
        build_tokenizer("cnn", TINY_CNN).init_linear_from_data(frames)
