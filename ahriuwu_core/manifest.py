"""The dataset manifest: every video with frames, its content hash and its split.

Its version hashes the per-video content hashes in sorted order (plus the split), so a training stage that
depends on it goes stale exactly when one video's data changes, at any number of videos.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import zarr

from ahriuwu_core.split import split_videos

MANIFEST_NAME = "manifest.json"


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def build_manifest(root: Path, video_ids: list[str], split_cfg) -> dict:
    videos, missing = [], []
    for video_id in sorted(video_ids):
        store = Path(root) / "frames" / f"{video_id}.zarr"
        if not store.exists():
            missing.append(video_id)
            continue
        attrs = dict(zarr.open_group(str(store), mode="r").attrs)
        videos.append(
            {
                "video_id": video_id,
                "content_hash": attrs["content_hash"],
                "num_frames": int(attrs["num_frames"]),
                "has_actions": bool(attrs.get("has_actions", False)),
            }
        )
    train, heldout = split_videos([v["video_id"] for v in videos], split_cfg)
    lines = [f"{v['video_id']}:{v['content_hash']}:{'heldout' if v['video_id'] in heldout else 'train'}" for v in videos]
    version = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return {"version": version, "videos": videos, "train": list(train), "heldout": list(heldout), "missing": missing}


def write_manifest(root: Path, manifest: dict) -> Path:
    path = Path(root) / MANIFEST_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, path)
    return path


def read_manifest(root: Path) -> dict:
    path = Path(root) / MANIFEST_NAME
    if not path.exists():
        raise FileNotFoundError(f"no dataset manifest at {path}: materialize `dataset_manifest` first")
    return json.loads(path.read_text())


def stores_by_split(root: Path, manifest: dict, kind: str) -> dict[str, list[Path]]:
    """Paths of the `kind` ("frames" or "latents") stores of the train and held-out videos."""
    out = {}
    for split in ("train", "heldout"):
        paths = [Path(root) / kind / f"{video_id}.zarr" for video_id in manifest[split]]
        absent = [p for p in paths if not p.exists()]
        if absent:
            raise FileNotFoundError(f"{kind} stores missing for {split} videos: {', '.join(p.stem for p in absent)}")
        out[split] = paths
    return out
