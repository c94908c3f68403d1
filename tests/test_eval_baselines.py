"""The evaluation's baselines: the prior alone follows the clip's actions frame after frame, the blur's sigma is
the best-scoring one per horizon, and the demo's camera track is the scroll the frames show."""

import dataclasses

import numpy as np
import pytest
import torch
import zarr

from ahriuwu_core.dynamics.config import DynamicsConfig
from ahriuwu_core.dynamics.model import WorldModel
from ahriuwu_core.dynamics.prior import fit_least_squares
from ahriuwu_core.eval import baselines as B
from ahriuwu_core.eval.rollouts import Clips
from ahriuwu_core.images import metrics as M

pytestmark = pytest.mark.usefixtures("one_thread")


def moved(grid: torch.Tensor, move: torch.Tensor) -> torch.Tensor:
    """(M, g, g, D) grids moved one cell: move 0 still, 1 right, 2 down (the edge cell repeats)."""
    out = grid.clone()
    right, down = move == 1, move == 2
    out[right, :, 1:] = grid[right, :, :-1]
    out[down, 1:] = grid[down, :-1]
    return out


def scrolling_video(batch: int, frames: int, g: int, d: int, seed: int):
    """Latent videos (B, T, g*g, D) where frame t is frame t-1 moved by actions[:, t] (the action that led into
    it), and those actions (B, T, 2): moves 0-2, the second component idle."""
    gen = torch.Generator().manual_seed(seed)
    move = torch.randint(0, 3, (batch, frames), generator=gen)
    grids = [torch.randn(batch, g, g, d, generator=gen)]
    for t in range(1, frames):
        grids.append(moved(grids[-1], move[:, t]))
    actions = torch.stack([move, torch.zeros_like(move)], -1)
    return torch.stack(grids, 1).reshape(batch, frames, g * g, d), actions


def test_prior_only_rolls_the_models_prior_out_with_each_frames_own_action():
    g, d, C, H = 5, 3, 3, 6
    cfg = DynamicsConfig(
        num_tokens=g * g,
        token_dim=d,
        d_model=32,
        n_layers=1,
        n_heads=2,
        n_kv_heads=1,
        n_registers=1,
        action_num_classes=(3, 2),
        persistence_prior=True,
        prior_kernel=3,
    )
    model = WorldModel(cfg).eval()
    with torch.no_grad():  # latents off the unit scale: the prior works in the standardized space
        model.latent_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        model.latent_std.copy_(torch.tensor([2.0, 0.5, 1.5]))
    train, train_actions = scrolling_video(16, 6, g, d, seed=0)
    fit_least_squares(
        model.prior, model.standardize(train), train_actions, torch.ones(16, 6, dtype=torch.bool), ridge=1e-6
    )
    video, actions = scrolling_video(4, C + H, g, d, seed=1)
    latents = video * model.latent_std + model.latent_mean
    has = torch.ones(4, C + H, dtype=torch.bool)
    pred = B.prior_only_latents(model, latents, actions, has, C, H)
    assert pred.shape == (4, H, g * g, d)
    torch.testing.assert_close(pred, latents[:, C:], atol=1e-3, rtol=1e-3)
    # the action that led into frame t moves frame t-1: one frame late, the same prior is wrong
    late = torch.cat([actions[:, :1], actions[:, :-1]], 1)
    assert (B.prior_only_latents(model, latents, late, has, C, H) - latents[:, C:]).abs().max() > 0.5
    # a model without an action prior has no such series
    plain = WorldModel(dataclasses.replace(cfg, prior_kernel=0))
    assert B.prior_only_latents(plain, latents, actions, has, C, H) is None


def test_blur_sigma_is_the_best_scoring_one_for_each_horizon():
    rng = np.random.default_rng(0)
    last = rng.integers(0, 256, (3, 24, 24, 3), dtype=np.uint8)  # 3 clips, sharp noise
    future = np.stack([last, B.blur(last, 1.5), B.blur(last, 3.0)], axis=1)  # h=1 unchanged, then blurred
    context = np.stack([last, last], axis=1)
    clips = Clips(
        video_id="v",
        frames=np.concatenate([context, future], axis=1),
        actions=np.zeros((3, 5, 2)),
        has_actions=np.zeros((3, 5), bool),
        hud_mask=None,
        starts=[0, 1, 2],
    )
    assert B.choose_blur_sigmas([clips], 2, 3, (0.0, 0.5, 1.5, 3.0)) == [0.0, 1.5, 3.0]
    assert np.array_equal(B.blur(last, 0.0), last)
    # blurring smooths: neighbouring pixels grow alike
    assert (
        np.abs(np.diff(B.blur(last, 1.0).astype(float), axis=1)).mean()
        < 0.5 * np.abs(np.diff(last.astype(float), axis=1)).mean()
    )


def test_scroll_oracle_moves_the_last_frame_against_the_camera():
    rng = np.random.default_rng(1)
    scene = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    camera = np.array([[10.0, 5.0], [12.0, 5.0], [14.0, 4.0], [17.0, 4.0]])  # (x, y) per frame; context 2
    shifts = B.camera_shifts(camera, 2, 2)
    np.testing.assert_allclose(shifts, [[-2.0, 1.0], [-5.0, 1.0]])  # content moves against the camera
    last = scene[5:25, 12:42]  # the view at camera (12, 5)
    pred = B.scroll_oracle(last, shifts)
    truth = scene[4:24, 17:47]  # the view at camera (17, 4)
    assert np.array_equal(pred[1][1:, :-5], truth[1:, :-5])  # exact where the old view covers the new one


def test_the_demo_camera_track_is_the_scroll_its_frames_show(tmp_path):
    """Rendered demo frames, 20 fps at 64x64: the camera track's step between frames is the scroll phase
    correlation measures, and reaches the evaluation through the project resource (the demo only)."""
    from ahriuwu_core.data.frames import FramesConfig, extract_frames
    from ahriuwu_core.data.layout import DataLayout
    from ahriuwu_core.demo.motion import estimate_scroll
    from ahriuwu_core.demo.video import DemoConfig, write_demo_videos
    from pipeline.resources import ProjectResource

    layout = DataLayout(tmp_path)
    [mp4] = write_demo_videos(tmp_path / "src", DemoConfig(num_videos=1, duration_s=3.0, seed=2), log=lambda s: None)
    layout.video_dir("demo_000").mkdir(parents=True)
    (layout.video_dir("demo_000") / "actions.json").write_bytes(mp4.with_name("demo_000.actions.json").read_bytes())
    store = layout.frames_store("demo_000")
    extract_frames(
        mp4,
        store,
        FramesConfig(width=64, height=64, hud_layout="demo"),
        actions_path=mp4.with_name("demo_000.actions.json"),
    )
    assert ProjectResource(source="folder:/videos").camera_track(layout) is None
    track = ProjectResource(source="demo").camera_track(layout)(store)
    frames = np.asarray(zarr.open_group(str(store), mode="r")["frames"][...])
    assert track.shape == (len(frames), 2)
    step = -(track[1:] - track[:-1])
    seen = np.array([estimate_scroll(frames[t], frames[t + 1]) for t in range(len(frames) - 1)])
    moving = np.abs(step).sum(1) > 0
    assert moving.mean() > 0.5
    error = np.abs(seen[moving] - step[moving])  # phase correlation slips on a few frames (effects, sprites)
    assert np.median(error) < 0.2 and (error < 0.5).mean() > 0.75, error
    # shifting by it predicts the frames 4 ahead better than copying the last one, outside the HUD
    hud = np.asarray(zarr.open_group(str(store), mode="r")["hud_mask"][...])
    gain = [
        M.psnr(B.scroll_oracle(frames[t], B.camera_shifts(track[t - 1 : t + 5], 1, 5))[3], frames[t + 4], hud)
        - M.psnr(frames[t], frames[t + 4], hud)
        for t in range(1, len(frames) - 5, 2)
    ]
    assert np.mean(gain) > 1.5 and np.mean(np.array(gain) > 0) > 0.7, gain
