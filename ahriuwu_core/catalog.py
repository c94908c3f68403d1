"""The video catalog: which videos the project knows and where each came from.

The sensor (or `make demo`) registers what a source lists; the `videos` stage looks its partition key up here.
One small JSON file per video keeps concurrent writers from clobbering each other.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path


def _entry_path(root: Path, video_id: str) -> Path:
    if not video_id or "/" in video_id or video_id.startswith("."):
        raise ValueError(f"invalid video id {video_id!r}")
    return Path(root) / "catalog" / f"{video_id}.json"


def register_videos(root: Path, entries: list[dict]) -> list[str]:
    """Record entries (each with at least `video_id` and `url`); return the ids that were new."""
    new = []
    for entry in entries:
        path = _entry_path(root, entry["video_id"])
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(entry, indent=1, default=str))
        os.replace(tmp, path)
        new.append(entry["video_id"])
    return new


def catalog_entry(root: Path, video_id: str) -> dict:
    path = _entry_path(root, video_id)
    if not path.exists():
        raise KeyError(f"video {video_id!r} is not in the catalog at {path.parent}: register it first")
    return json.loads(path.read_text())


def catalog_ids(root: Path) -> list[str]:
    folder = Path(root) / "catalog"
    return sorted(p.stem for p in folder.glob("*.json")) if folder.exists() else []


def video_files(root: Path, video_id: str) -> list[Path]:
    """Every file or folder the per-video stages write for `video_id`."""
    root = Path(root)
    return [
        _entry_path(root, video_id),
        root / "videos" / video_id,
        root / "frames" / f"{video_id}.zarr",
        root / "latents" / f"{video_id}.zarr",
    ]


def remove_video(root: Path, video_id: str) -> list[Path]:
    """Delete a video's catalog entry and per-video outputs; return what was removed."""
    removed = []
    for path in video_files(root, video_id):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(path)
    return removed
