"""The baselines a dream is scored against, each a prediction of the horizon (uint8, like the ground truth) from
the same clip, and what each one tells apart:

- `persistence`: the last context frame repeated (the bar a dream must clear);
- `persistence_motion`: that frame moved on at the velocity of the last two context frames;
- `latent_persistence`: the last context frame's latent decoded and repeated, what a model that predicts no
  change scores through the tokenizer (the fair bar when pixel persistence is above the tokenizer ceiling);
- `persistence_blur`: pixel persistence under a Gaussian blur whose sigma is chosen per horizon by mean PSNR on
  the evaluated clips (which favours it): how much of a margin blur alone buys;
- `prior_only`: the world model's own action prior rolled out alone, when it has one: how much the transformer
  adds to it;
- `scroll_oracle`: the last frame shifted by the true camera motion, where the source knows it (the demo): what
  getting the scroll exactly right, and nothing else, scores.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ahriuwu_core.eval.config import Plan
from ahriuwu_core.eval.rollouts import BatchRollout, Clips, Timer, to_uint8
from ahriuwu_core.images import metrics as M
from ahriuwu_core.images.motion import constant_velocity_rollout, estimate_shift, motion_weights, shift_image

BLUR_NOTE = (
    "sigma chosen per horizon from the grid by mean PSNR on the evaluated clips themselves, which favours this baseline"
)


def hud_faded_estimator(hud_mask, size):
    """The default motion estimate for a video: phase correlation with its HUD faded out."""
    weights = motion_weights(size[0], size[1], hud_mask)
    return lambda a, b: estimate_shift(a, b, weights)


def motion_estimators(all_clips: list[Clips], estimate_motion=None) -> list:
    """Per video: `estimate_motion` when the caller passes one, else `hud_faded_estimator` for its HUD mask."""
    return [estimate_motion or hud_faded_estimator(c.hud_mask, c.frames.shape[2:4]) for c in all_clips]


def blur(frames_u8: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of sigma pixels over the two image axes of (..., H, W, 3) uint8 frames."""
    if sigma <= 0:
        return frames_u8
    from scipy.ndimage import gaussian_filter

    sigmas = (0,) * (frames_u8.ndim - 3) + (sigma, sigma, 0)
    out = gaussian_filter(frames_u8.astype(np.float32), sigmas, mode="nearest")
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def choose_blur_sigmas(all_clips: list[Clips], context: int, horizon: int, grid) -> list[float]:
    """Per horizon, the sigma of `grid` whose blurred last context frame has the best mean PSNR over every clip
    of `all_clips` (each video scored outside its own HUD mask)."""
    scores = np.zeros((len(grid), horizon))
    for c in all_clips:
        last, future = c.frames[:, context - 1], c.frames[:, context : context + horizon]
        for i, sigma in enumerate(grid):
            blurred = np.repeat(blur(last, sigma)[:, None], horizon, axis=1)
            scores[i] += np.asarray(M.psnr(blurred, future, c.hud_mask)).sum(axis=0)
    return [float(grid[i]) for i in scores.argmax(axis=0)]


def latent_persistence(tokenizer, br: BatchRollout, plan: Plan) -> np.ndarray:
    """The last context frame's latent, decoded once and repeated over the horizon."""
    C, H = plan.cfg.context, plan.cfg.horizon
    decoded = to_uint8(tokenizer.decode(br.latents[:, C - 1 : C]).float())
    return np.repeat(decoded, H, axis=1)


@torch.no_grad()
def prior_only_latents(
    world_model, latents: torch.Tensor, actions: torch.Tensor, has_actions: torch.Tensor, context: int, horizon: int
) -> torch.Tensor | None:
    """The world model's action prior alone (`world_model.prior`, None when it has none), rolled out frame after
    frame from the last context latent with the clip's actions (frame t's action led into it), in the model's
    standardized space. latents (B, >= C, N, D) -> (B, H, N, D) tokenizer latents."""
    prior = getattr(world_model, "prior", None)
    if prior is None:
        return None
    z = world_model.standardize(latents[:, context - 1 : context])
    out = []
    for t in range(context, context + horizon):
        z = prior(z, actions[:, t : t + 1], has_actions[:, t : t + 1])
        out.append(z)
    return world_model.unstandardize(torch.cat(out, 1))


def camera_shifts(camera: np.ndarray, context: int, horizon: int) -> np.ndarray:
    """(H, 2) the content's shift (dx, dy) in pixels from the last context frame to each horizon frame: the
    opposite of the camera's motion. camera: (C+H, 2) the camera's position per frame, in pixels."""
    return -(camera[context : context + horizon] - camera[context - 1])


def scroll_oracle(last_u8: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """The last frame shifted by each horizon's true scroll (edges repeat): (H, h, w, 3)."""
    return np.stack([shift_image(last_u8, dx, dy) for dx, dy in shifts])


def predict(
    tokenizer,
    world_model,
    br: BatchRollout,
    all_clips: list[Clips],
    plan: Plan,
    motion_fns,
    blur_sigmas: list[float],
    timer: Timer,
) -> dict[str, np.ndarray]:
    """Every baseline that applies to this batch, by series name: uint8 (B, H, h, w, 3). Call under no_grad and
    the autocast context."""
    C, H, gt_u8 = plan.cfg.context, plan.cfg.horizon, br.gt_u8
    out = {"persistence": np.repeat(gt_u8[:, C - 1 : C], H, axis=1)}
    t = time.perf_counter()
    out["persistence_motion"] = np.stack(
        [
            constant_velocity_rollout(gt_u8[k, C - 2], gt_u8[k, C - 1], H, motion_fns[v])
            if C >= 2
            else out["persistence"][k]
            for k, (v, _) in enumerate(br.items)
        ]
    )
    timer.tick("persistence_motion", t)
    t = time.perf_counter()
    out["latent_persistence"] = latent_persistence(tokenizer, br, plan)
    out["persistence_blur"] = np.stack([blur(gt_u8[:, C - 1], s) for s in blur_sigmas], axis=1)
    prior = prior_only_latents(world_model, br.latents, br.actions, br.has_actions, C, H)
    if prior is not None:
        out["prior_only"] = to_uint8(tokenizer.decode(prior))
    cameras = [all_clips[v].camera[i] if all_clips[v].camera is not None else None for v, i in br.items]
    if all(c is not None for c in cameras):
        out["scroll_oracle"] = np.stack(
            [scroll_oracle(gt_u8[k, C - 1], camera_shifts(cam, C, H)) for k, cam in enumerate(cameras)]
        )
    timer.tick("baselines", t)
    return out
