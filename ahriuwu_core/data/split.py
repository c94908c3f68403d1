"""The train / validation / test split: by video, stable, never moved by adding videos.

Each video's stable hash score in [0, 1) puts it in a band: test below `test_fraction` (1/4), validation in the
next `validation_fraction` (1/6), train above. A score depends on the video id alone, so adding a video never
moves another. Small datasets then get minimums, topped up test first, from the training videos with the lowest
scores (those nearest the held-out bands; such a video trains again once enough others hash into the bands):

- 1 video: it trains; nothing is evaluated.
- 2 to 11 (`full_size - 1`) videos: at least 1 test video. Validation videos only while at least
  `validation_min_train` (4) videos still train, so from 6 videos on; otherwise the validation band trains.
- 12 videos or more: at least `min_validation` (2) validation and `min_test` (4) test videos.
- At least one video always trains: if the bands held out all of them, the highest-scoring one trains.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import NamedTuple

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitConfig:
    test_fraction: float = 0.25  # the test band: hash score below this
    validation_fraction: float = 1 / 6  # the validation band: the next 1/6 of scores
    min_test: int = 4  # minimums at `full_size` videos or more
    min_validation: int = 2
    full_size: int = 12
    validation_min_train: int = 4  # below full_size: a validation video only with this many training ones
    salt: str = "ahriuwu"


class Split(NamedTuple):
    train: list[str]
    validation: list[str]
    test: list[str]


def split_score(video_id: str, salt: str) -> float:
    """Stable uniform number in [0, 1) for a video id: depends on (salt, id) only, never on other videos."""
    digest = hashlib.sha256(f"{salt}\x00{video_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def minimum_counts(n: int, cfg: SplitConfig) -> tuple[int, int]:
    """(validation, test) minimums for n videos (module docstring)."""
    if n >= cfg.full_size:
        return cfg.min_validation, cfg.min_test
    return (1, 1) if n >= 2 else (0, 0)  # validation only beside validation_min_train training videos


def split_videos(video_ids, cfg: SplitConfig = SplitConfig()) -> Split:
    """Split(train, validation, test), each sorted (module docstring)."""
    if not (
        0.0 <= cfg.test_fraction
        and 0.0 <= cfg.validation_fraction
        and cfg.test_fraction + cfg.validation_fraction <= 1.0
    ):
        raise ValueError(
            f"SplitConfig: test_fraction={cfg.test_fraction} and validation_fraction="
            f"{cfg.validation_fraction} must be >= 0 with a sum of at most 1"
        )
    ids = sorted(set(video_ids))
    score = {v: split_score(v, cfg.salt) for v in ids}
    need_val, need_test = minimum_counts(len(ids), cfg)
    test = {v for v in ids if score[v] < cfg.test_fraction}
    val = {v for v in ids if v not in test and score[v] < cfg.test_fraction + cfg.validation_fraction}
    train = sorted((v for v in ids if v not in test and v not in val), key=score.get)
    # Below full_size a validation video may not leave fewer than validation_min_train videos training.
    floor = cfg.validation_min_train if len(ids) < cfg.full_size else 1
    while len(test) < need_test and (len(train) > 1 or val):  # the test set comes first
        test.add(train.pop(0) if len(train) > 1 else min(val, key=score.get))
        val -= test
    while val and len(train) < floor:
        v = max(val, key=score.get)
        val.remove(v)
        train.append(v)
    train.sort(key=score.get)
    while len(val) < need_val and len(train) > floor:
        val.add(train.pop(0))
    while ids and not train:  # at least one video trains
        group = val or test
        v = max(group, key=score.get)
        group.remove(v)
        train.append(v)
    return Split(sorted(train), sorted(val), sorted(test))


def check_split_disjoint(train_ids, evaluated_ids) -> tuple[bool, dict]:
    """Asset check: no evaluated video (validation or test) reached training, and none is listed twice (in both
    validation and test). Nothing to evaluate is not a leak (a single-video dataset): it passes, and says so."""
    evaluated = list(evaluated_ids)
    overlap = sorted(set(train_ids) & set(evaluated))
    twice = sorted(v for v in set(evaluated) if evaluated.count(v) > 1)
    passed = not overlap and not twice
    reason = (
        "videos on both sides"
        if overlap
        else "videos in two evaluated splits"
        if twice
        else ""
        if evaluated
        else "no evaluated video: nothing to evaluate"
    )
    return passed, {
        "overlap": overlap,
        "twice": twice,
        "num_train": len(set(train_ids)),
        "num_evaluated": len(set(evaluated)),
        "reason": reason,
    }
