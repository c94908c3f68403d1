"""Does the model follow its actions? The same clips rolled out with the true and with shuffled actions (the
PSNR gap), and action agreement: does the dreamed view scroll against the commanded move?"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from ahriuwu_core.data.conventions import MOVE_UNIT, has_move_component
from ahriuwu_core.eval.config import Plan
from ahriuwu_core.eval.rollouts import BatchRollout, Clips, Timer, to_uint8
from ahriuwu_core.images import metrics as M


def shuffled_actions(actions: torch.Tensor, context: int, seed: int) -> torch.Tensor:
    """Permute the horizon's action rows across time and clips with a seeded permutation (context untouched).
    When some rows differ the permutation is redrawn until it changes the sequence (up to 10 tries)."""
    B, T, C = actions.shape
    future = actions[:, context:].reshape(B * (T - context), C)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(future.shape[0], generator=gen)
    for _ in range(10):
        if not torch.equal(future[perm], future) or bool((future == future[0]).all()):
            break
        perm = torch.randperm(future.shape[0], generator=gen)
    out = actions.clone()
    out[:, context:] = future[perm].reshape(B, T - context, C)
    return out


def scroll_agreement(frames: np.ndarray, moves: np.ndarray, estimate_scroll, max_angle_deg: float = 45.0):
    """Fraction of moving steps where the map scrolls opposite the commanded move.

    frames uint8 (T, H, W, 3); moves (T,) move class per frame, aligned as in `conventions`.
    Step t compares frames t-1 -> t with moves[t]. The camera is locked on the player, so content moves by
    -move.
    Returns (agreements, counted_steps)."""
    agree, counted = 0, 0
    cos_tol = math.cos(math.radians(max_angle_deg))
    for t in range(1, frames.shape[0]):
        move = int(moves[t])
        if move not in MOVE_UNIT:
            continue
        counted += 1
        dx, dy = estimate_scroll(frames[t - 1], frames[t])
        norm = math.hypot(dx, dy)
        if norm < 1e-6:
            continue  # no motion predicted: the action was not followed
        ux, uy = MOVE_UNIT[move]
        if (-ux * dx - uy * dy) / norm >= cos_tol:
            agree += 1
    return agree, counted


def acting_rows(br: BatchRollout, context: int) -> np.ndarray:
    """(B,) bool: the clips whose horizon carries actions (the gap is measured over those)."""
    return br.has_actions_np[:, context:].any(axis=1)


def shuffled_rows(br: BatchRollout, plan: Plan) -> np.ndarray:
    """(B,) bool: the clips rolled out with shuffled actions: acting ones, the first
    `shuffled_clips_per_video` of each video when that is set, none when the plan has no shuffled rollouts."""
    rows = acting_rows(br, plan.cfg.context) & plan.shuffled_actions
    if plan.cfg.shuffled_clips_per_video:
        rows &= np.array([i for _, i in br.items]) < plan.cfg.shuffled_clips_per_video
    return rows


def roll_out_shuffled(
    world_model, rollout_fn, tokenizer, br: BatchRollout, plan: Plan, timer: Timer, device
) -> np.ndarray | None:
    """The first variant rolled out with the horizon's actions shuffled on `shuffled_rows` (other rows stay
    zero); None when there are none. Call under no_grad and the autocast context."""
    cfg, C = plan.cfg, plan.cfg.context
    sub = np.flatnonzero(shuffled_rows(br, plan))
    if not len(sub):
        return None
    t = time.perf_counter()
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    pred_lat = rollout_fn(
        world_model,
        br.latents[sub, :C],
        shuffled_actions(br.actions[sub], C, cfg.seed),
        br.has_actions[sub],
        cfg.horizon,
        sampling_steps=cfg.sampling_steps[0],
        context_noise=plan.noise,
        generator=gen,
    ).float()
    shuffled_u8 = np.zeros_like(br.future_u8)
    shuffled_u8[sub] = to_uint8(tokenizer.decode(pred_lat))
    timer.tick("rollout_shuffled_actions", t)
    return shuffled_u8


def score_action_gap(acc, br: BatchRollout, rows: np.ndarray, shuffled_u8, mask, plan: Plan) -> np.ndarray:
    """PSNR of the first variant with true and with shuffled actions on this video's rows that were also rolled
    out shuffled. Returns this video's acting rows (action agreement counts them all)."""
    gap_rows = rows[shuffled_rows(br, plan)[rows]]
    if shuffled_u8 is not None and len(gap_rows):
        acc.add("psnr", "true_actions", M.psnr(br.preds_u8[plan.primary][gap_rows], br.future_u8[gap_rows], mask))
        acc.add("psnr", "shuffled_actions", M.psnr(shuffled_u8[gap_rows], br.future_u8[gap_rows], mask))
    return rows[acting_rows(br, plan.cfg.context)[rows]]


def add_agreement(
    agreement: list,
    gt_agreement: list,
    br: BatchRollout,
    act_rows,
    clips: Clips,
    plan: Plan,
    estimate_motion,
    timer: Timer,
) -> None:
    """Count scroll agreement of the first variant's dream, and of the ground truth for reference, on videos
    whose first action component is the 8-way move."""
    cfg, C = plan.cfg, plan.cfg.context
    if not (cfg.action_agreement and has_move_component(clips.action_components, clips.action_num_classes)):
        return
    t = time.perf_counter()
    for k in act_rows:
        moves = br.actions_np[k, C - 1 :, 0]
        a, n = scroll_agreement(
            np.concatenate([br.gt_u8[k, C - 1 : C], br.preds_u8[plan.primary][k]]), moves, estimate_motion
        )
        agreement[0] += a
        agreement[1] += n
        a, n = scroll_agreement(br.gt_u8[k, C - 1 :], moves, estimate_motion)
        gt_agreement[0] += a
        gt_agreement[1] += n
    timer.tick("action_agreement", t)


def action_metrics(acc, agreement, gt_agreement) -> dict:
    """The gap (true minus shuffled actions, dB per horizon) and the agreement fractions."""
    true_psnr, shuf_psnr = acc.per_horizon("psnr", "true_actions"), acc.per_horizon("psnr", "shuffled_actions")
    return {
        "action_gap_db": [a - b for a, b in zip(true_psnr, shuf_psnr)] if true_psnr else [],
        "action_gap_available": bool(true_psnr),
        "action_gap_clips": int(acc.per_clip("psnr", "true_actions").shape[0]) if true_psnr else 0,
        "action_agreement": agreement[0] / agreement[1] if agreement[1] else None,
        "action_agreement_ground_truth": gt_agreement[0] / gt_agreement[1] if gt_agreement[1] else None,
        "action_agreement_steps": agreement[1],
    }
