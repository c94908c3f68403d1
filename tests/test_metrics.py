import math

import lpips
import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from ahriuwu_core.images import metrics


def test_psnr_of_known_mse_float_and_uint8():
    target = np.zeros((8, 8, 3))
    pred = np.full((8, 8, 3), 0.1)  # MSE = 0.01 -> 20 dB
    assert metrics.psnr(pred, target) == pytest.approx(20.0, abs=1e-9)
    # uint8: 51/255 = 0.2 -> MSE 0.04 -> 10 log10(25) = 13.979 dB
    t8 = np.zeros((8, 8, 3), np.uint8)
    p8 = np.full((8, 8, 3), 51, np.uint8)
    assert metrics.psnr(p8, t8) == pytest.approx(10 * math.log10(25), abs=1e-9)


def test_psnr_channels_first_tensor_batch_per_image():
    target = torch.zeros(2, 3, 3, 8, 8)
    pred = torch.zeros(2, 3, 3, 8, 8)
    pred[0, 1] = 0.1  # only one image differs
    values = metrics.psnr(pred, target)
    assert values.shape == (2, 3)
    assert values[0, 1] == pytest.approx(20.0, abs=1e-4)
    assert values[1, 2] == pytest.approx(100.0)  # floor on MSE: identical -> 100 dB, not inf


def test_masked_pixels_are_ignored():
    target = np.zeros((8, 8, 3))
    pred = np.zeros((8, 8, 3))
    pred[:4] = 0.1  # error only in the top half ...
    pred[4:, :, :] = 0.0
    mask = np.zeros((8, 8), np.uint8)
    mask[4:] = 1  # ... bottom half is HUD
    assert metrics.psnr(pred, target, mask) == pytest.approx(20.0, abs=1e-9)
    # put garbage in the HUD: no change
    pred[4:] = 1.0
    assert metrics.psnr(pred, target, mask) == pytest.approx(20.0, abs=1e-9)
    # error only under the HUD -> perfect score on game pixels
    pred[:4] = 0.0
    assert metrics.psnr(pred, target, mask) == pytest.approx(100.0)
    # unmasked, the same pair: MSE = 0.5 * 1 = 0.5 -> 3.0103 dB
    assert metrics.psnr(pred, target) == pytest.approx(10 * math.log10(2), abs=1e-9)


def test_mask_excluding_everything_or_wrong_shape_raises():
    img = np.zeros((8, 8, 3))
    with pytest.raises(ValueError, match="excludes every pixel"):
        metrics.psnr(img, img, np.ones((8, 8)))
    with pytest.raises(ValueError, match="does not match"):
        metrics.psnr(img, img, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="shape"):
        metrics.psnr(img, np.zeros((8, 9, 3)))


def test_ssim_identical_is_one_and_matches_skimage_without_mask():
    rng = np.random.default_rng(0)
    a = rng.random((16, 16, 3))
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    ref = structural_similarity(a, b, win_size=7, data_range=1.0, channel_axis=-1)
    assert metrics.ssim(b, a) == pytest.approx(ref, abs=1e-12)
    assert metrics.ssim(b, a) < 0.99


def test_ssim_mask_ignores_hud_region():
    rng = np.random.default_rng(1)
    a = rng.random((24, 24, 3))
    b = a.copy()
    b[:, 12:] = rng.random((24, 12, 3))  # right half ruined
    mask = np.zeros((24, 24), np.uint8)
    mask[:, 9:] = 1  # HUD covers the right half plus the window's reach (3 px)
    assert metrics.ssim(b, a, mask) == pytest.approx(1.0)
    assert metrics.ssim(b, a) < 0.8


def _random_trunk_lpips():
    # Linear heads ship inside the lpips package; a random trunk avoids needing the provisioned backbone here.
    torch.manual_seed(0)
    return lpips.LPIPS(net="alex", spatial=True, pnet_rand=True, verbose=False).eval()


def test_lpips_identical_zero_masked_region_ignored():
    model = _random_trunk_lpips()
    rng = np.random.default_rng(2)
    a = rng.random((2, 32, 32, 3)).astype(np.float32)
    b = a.copy()
    b[:, :, 16:] = 0.0
    d_same = metrics.lpips_distance(a, a, model=model)
    assert d_same.shape == (2,)
    assert np.allclose(d_same, 0.0, atol=1e-6)
    d_full = metrics.lpips_distance(b, a, model=model)
    assert np.all(d_full > 1e-4)
    mask = np.zeros((32, 32), np.uint8)
    mask[:, 16:] = 1
    d_masked = metrics.lpips_distance(b, a, mask=mask, model=model)
    # hand-computed: the model's spatial map averaged over the left (game) half only
    with torch.no_grad():
        tb = torch.from_numpy(b).permute(0, 3, 1, 2) * 2 - 1
        ta = torch.from_numpy(a).permute(0, 3, 1, 2) * 2 - 1
        dmap = model(tb, ta)[:, 0]
    expected = dmap[:, :, :16].mean(dim=(-2, -1)).double().numpy()
    assert np.allclose(d_masked, expected, rtol=1e-5)
    assert np.allclose(d_full, dmap.mean(dim=(-2, -1)).double().numpy(), rtol=1e-5)
    assert not np.allclose(d_masked, d_full, rtol=1e-3)


def test_latent_psnr_uses_range_two():
    a = torch.zeros(3, 4, 5)
    b = torch.full((3, 4, 5), 0.2)  # MSE 0.04 -> 10 log10(4 / 0.04) = 20 dB
    assert np.allclose(metrics.latent_psnr(b, a), 20.0)
    assert metrics.latent_mse(b, a).shape == (3,)


# ------------------------------------------------------------------------------------- bootstrap intervals


def _covers(low, high, truth) -> bool:
    return bool(low[0] <= truth <= high[0])


def test_bootstrap_interval_of_a_normal_mean_is_the_textbook_one_and_covers_95_percent():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, 400)
    low, high = metrics.bootstrap_mean_ci(x, resamples=4000, seed=1)
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x))
    assert low[0] == pytest.approx(x.mean() - half, abs=0.1 * half)
    assert high[0] == pytest.approx(x.mean() + half, abs=0.1 * half)
    hits = [
        _covers(*metrics.bootstrap_mean_ci(rng.normal(3.0, 2.0, 50), resamples=500, seed=k), 3.0) for k in range(400)
    ]
    assert 0.91 <= np.mean(hits) <= 0.98, np.mean(hits)


def _videos(rng, n_videos, clips, video_sd=1.0, clip_sd=1.0, mean=0.5):
    """Clip scores with a per-video random effect (shared by its clips) plus clip noise; groups are video ids."""
    effect = rng.normal(0.0, video_sd, n_videos)
    values = mean + np.repeat(effect, clips) + rng.normal(0.0, clip_sd, n_videos * clips)
    return values, np.repeat(np.arange(n_videos), clips)


def test_clustered_bootstrap_covers_the_true_mean_where_the_clip_bootstrap_does_not():
    """20 videos x 16 clips with a video effect as large as the clip noise: the clip-level interval is about a
    third as wide as it should be and misses often; the clustered one covers about 95% of the time."""
    rng = np.random.default_rng(0)
    clustered, naive = [], []
    for k in range(300):
        values, groups = _videos(rng, 20, 16)
        clustered.append(_covers(*metrics.clustered_bootstrap_mean_ci(values, groups, resamples=600, seed=k), 0.5))
        naive.append(_covers(*metrics.bootstrap_mean_ci(values, resamples=600, seed=k), 0.5))
    assert 0.90 <= np.mean(clustered) <= 0.99, np.mean(clustered)
    assert np.mean(naive) < 0.75, np.mean(naive)


def test_clustered_bootstrap_with_one_clip_per_video_is_the_plain_bootstrap():
    values = np.random.default_rng(1).normal(size=(30, 3))
    ids = [f"video{i}" for i in range(30)]
    plain = metrics.bootstrap_mean_ci(values, seed=4)
    clustered = metrics.clustered_bootstrap_mean_ci(values, ids, seed=4)
    np.testing.assert_allclose(clustered, plain)


def test_clustered_bootstrap_weights_videos_by_their_clips_and_checks_its_input():
    # Two videos, constant within each: a resample holds video a twice (mean 0), b twice (4), or one of each,
    # whose mean over the 4 clips drawn is (3 * 0 + 4) / 4 = 1 (not the mean of the two videos' means, 2). The
    # middle 40% of resamples are all of that last kind.
    values = np.array([0.0] * 3 + [4.0])
    low, high = metrics.clustered_bootstrap_mean_ci(values, ["a", "a", "a", "b"], level=0.4, resamples=4000)
    assert low[0] == high[0] == 1.0
    low, high = metrics.clustered_bootstrap_mean_ci(values, ["a", "a", "a", "b"], level=0.99, resamples=4000)
    assert (low[0], high[0]) == (0.0, 4.0)
    with pytest.raises(ValueError, match="groups"):
        metrics.clustered_bootstrap_mean_ci(values, ["a", "b"])
    with pytest.raises(ValueError, match="no samples"):
        metrics.clustered_bootstrap_mean_ci(np.zeros((0, 2)), [])
