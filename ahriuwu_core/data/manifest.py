"""The dataset manifest: every video with frames, its content hash and its split.

Its version hashes the per-video content hashes in sorted order (plus the split), so a training stage that
depends on it goes stale exactly when one video's data changes, at any number of videos.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import zarr

from ahriuwu_core.data.files import write_json
from ahriuwu_core.data.layout import DataLayout
from ahriuwu_core.data.split import SPLITS, split_videos


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class ActionSpaceMismatch(ValueError):
    """Two labelled videos of one dataset record different action spaces."""


def build_manifest(root: Path, video_ids: list[str], split_cfg) -> dict:
    """Every video with a frames store, its split, and the dataset's action space (that of its labelled videos:
    ActionSpaceMismatch names two videos that disagree). Unlabelled videos join through the no-action path."""
    videos, missing = [], []
    for video_id in sorted(video_ids):
        store = DataLayout(root).frames_store(video_id)
        if not store.exists():
            missing.append(video_id)
            continue
        group = zarr.open_group(str(store), mode="r")
        attrs = dict(group.attrs)
        labelled = "has_actions" in group and bool(np.asarray(group["has_actions"][:]).any())
        videos.append(
            {
                "video_id": video_id,
                "content_hash": attrs["content_hash"],
                "num_frames": int(attrs["num_frames"]),
                "has_actions": labelled,
                "action_space": (
                    {
                        "components": list(attrs.get("action_components", [])),
                        "num_classes": [int(n) for n in attrs.get("action_num_classes", [])],
                    }
                    if labelled
                    else None
                ),
            }
        )
    labelled = [v for v in videos if v["has_actions"]]
    for v in labelled[1:]:
        if v["action_space"] != labelled[0]["action_space"]:
            a, b = labelled[0], v
            raise ActionSpaceMismatch(
                f"videos {a['video_id']} and {b['video_id']} have different action spaces: {a['video_id']} "
                f"{a['action_space']['components']} x {a['action_space']['num_classes']} classes, {b['video_id']} "
                f"{b['action_space']['components']} x {b['action_space']['num_classes']} classes. One dataset has "
                "one action space: fix the sidecars, or keep the datasets apart"
            )
    split = split_videos([v["video_id"] for v in videos], split_cfg)._asdict()
    split_of = {v: name for name, ids in split.items() for v in ids}
    lines = [f"{v['video_id']}:{v['content_hash']}:{split_of[v['video_id']]}" for v in videos]
    version = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return {
        "version": version,
        "videos": videos,
        **split,
        "missing": missing,
        "action_space": labelled[0]["action_space"] if labelled else None,
    }


def write_manifest(root: Path, manifest: dict) -> Path:
    return write_json(DataLayout(root).manifest, manifest)


def read_manifest(root: Path) -> dict:
    path = DataLayout(root).manifest
    if not path.exists():
        raise FileNotFoundError(f"no dataset manifest at {path}: materialize `dataset_manifest` first")
    return json.loads(path.read_text())


def stores_by_split(root: Path, manifest: dict, kind: str) -> dict[str, list[Path]]:
    """Paths of the `kind` ("frames" or "latents") stores of the train, validation and test videos."""
    out = {}
    for split in SPLITS:
        paths = [DataLayout(root).store(kind, video_id) for video_id in manifest[split]]
        absent = [p for p in paths if not p.exists()]
        if absent:
            raise FileNotFoundError(f"{kind} stores missing for {split} videos: {', '.join(p.stem for p in absent)}")
        out[split] = paths
    return out


def check_trained_on_current(trained_on: str | None, current: str | None) -> tuple[bool, dict]:
    """Whether a model was trained (or evaluated) on the current dataset: the manifest version it recorded against
    the manifest's version now. (passed, details)."""
    details = {"trained_on_manifest": trained_on or "unknown", "current_manifest": current or "none"}
    if current is None:
        return False, {**details, "reason": "there is no dataset manifest"}
    if trained_on is None:
        return False, {
            **details,
            "reason": "no manifest version recorded (never materialized, or before it was recorded)",
        }
    if trained_on != current:
        return False, {**details, "reason": "the dataset changed since: rematerialize to use the current data"}
    return True, {**details, "reason": "trained on the current dataset"}
