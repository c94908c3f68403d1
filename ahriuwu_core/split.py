"""The train / held-out split: by video, stable, never moved by adding videos."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass
class SplitConfig:
    heldout_ids: tuple[str, ...] = ()   # always held out
    heldout_fraction: float = 0.25      # plus every video whose stable hash falls under this fraction
    min_heldout: int = 1                # with 2+ videos and fewer held out, the lowest-hash videos join them
    salt: str = "ahriuwu"


def heldout_score(video_id: str, salt: str) -> float:
    """Stable uniform number in [0, 1) for a video id: depends on (salt, id) only, never on other videos."""
    digest = hashlib.sha256(f"{salt}\x00{video_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_videos(video_ids, cfg: SplitConfig) -> tuple[list[str], list[str]]:
    """(train_ids, heldout_ids), both sorted. A video is held out iff it is listed in cfg.heldout_ids or its
    hash score is below cfg.heldout_fraction, so adding a video never moves an existing one. While that leaves
    fewer than cfg.min_heldout of 2+ videos held out, the videos with the lowest scores are held out too (such a
    video can go back to training once enough others hash under the fraction). One video: all training."""
    if not 0.0 <= cfg.heldout_fraction <= 1.0:
        raise ValueError(f"SplitConfig.heldout_fraction must be in [0, 1], got {cfg.heldout_fraction}")
    ids = sorted(set(video_ids))
    forced = set(cfg.heldout_ids)
    heldout = {v for v in ids if v in forced or heldout_score(v, cfg.salt) < cfg.heldout_fraction}
    if len(ids) >= 2:
        for v in sorted((v for v in ids if v not in heldout), key=lambda v: heldout_score(v, cfg.salt)):
            if len(heldout) >= min(cfg.min_heldout, len(ids) - 1):
                break
            heldout.add(v)
    return [v for v in ids if v not in heldout], sorted(heldout)


def check_split_disjoint(train_ids, heldout_ids) -> tuple[bool, dict]:
    """Asset check: no video on both sides of the split (and no duplicates hiding one). No held-out video is
    not a leak (a single-video dataset): it passes, and says so."""
    overlap = sorted(set(train_ids) & set(heldout_ids))
    passed = not overlap
    reason = "videos on both sides" if overlap else ("" if heldout_ids else "no held-out video: nothing to evaluate")
    return passed, {"overlap": overlap, "num_train": len(set(train_ids)), "num_heldout": len(set(heldout_ids)),
                    "reason": reason}
