"""motion.py: the global-shift estimate, sub-pixel translation, and the persistence_motion baseline."""

import numpy as np
import pytest

from ahriuwu_core.images.motion import constant_velocity_rollout, estimate_shift, motion_weights, shift_image


def _texture(seed=0, size=64):
    rng = np.random.default_rng(seed)
    small = rng.random((size // 4, size // 4, 3))
    return (np.kron(small, np.ones((4, 4, 1))) * 255).astype(np.uint8)  # smooth enough for sub-pixel shifts


def test_shift_image_moves_content_by_whole_and_fractional_pixels():
    img = _texture()
    moved = shift_image(img, 3.0, -2.0)
    assert np.array_equal(moved[8:56, 8:56], np.roll(img, (-2, 3), (0, 1))[8:56, 8:56])
    assert np.array_equal(moved[8:56, 0], moved[8:56, 2])  # the map that scrolls in repeats the edge
    half = shift_image(img, 0.5, 0.0).astype(float)
    expected = (img[:, 9:40].astype(float) + img[:, 10:41]) / 2  # halfway between neighbours
    assert np.abs(half[:, 10:41] - expected).max() <= 1.0


@pytest.mark.parametrize("dx, dy", [(2.0, -3.0), (-1.5, 0.5), (0.0, 0.0)])
def test_estimate_shift_recovers_the_translation(dx, dy):
    img = _texture(1)
    est = estimate_shift(img, shift_image(img, dx, dy))
    assert est == pytest.approx((dx, dy), abs=0.25)


def test_hud_weights_ignore_a_static_overlay():
    a = _texture(2)
    b = shift_image(a, 2.0, 1.0)
    a[40:64, 40:64] = b[40:64, 40:64] = 255  # a bright static panel in both frames
    hud = np.zeros((64, 64), np.uint8)
    hud[40:64, 40:64] = 1
    assert estimate_shift(a, b, motion_weights(64, 64, hud)) == pytest.approx((2.0, 1.0), abs=0.3)


def test_constant_velocity_rollout_carries_the_last_motion_forward():
    world = _texture(3, 128)
    frames = [world[20:84, 20 + 2 * t : 84 + 2 * t] for t in range(4)]  # the view pans 2 px per frame
    pred = constant_velocity_rollout(frames[0], frames[1], 2)
    assert pred.shape == (2, 64, 64, 3)
    for h in (1, 2):
        err = np.abs(pred[h - 1, :, :48].astype(int) - frames[1 + h][:, :48]).mean()
        still = np.abs(frames[1][:, :48].astype(int) - frames[1 + h][:, :48]).mean()
        assert err < 0.1 * still
