"""The video catalog: which videos the project knows and where each came from.

The sensor (or `make demo`) registers what a source lists; the `videos` stage looks its partition key up here.
One small JSON file per video keeps concurrent writers from clobbering each other. Removed videos are listed in
`catalog/removed.txt` (one id a line), so a source that still offers them does not bring them back.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .files import write_json, write_text
from .layout import DataLayout


def invalid_id_reason(video_id) -> str | None:
    """Why `video_id` cannot name a video (its files live at paths built from it), or None if it can."""
    if not isinstance(video_id, str) or not video_id:
        return "empty video id"
    if "/" in video_id or "\\" in video_id or "\0" in video_id:
        return f"video id {video_id!r} contains '/', '\\' or NUL"
    if video_id.startswith("."):
        return f"video id {video_id!r} starts with '.'"
    return None


def _entry_path(root: Path, video_id: str) -> Path:
    reason = invalid_id_reason(video_id)
    if reason:
        raise ValueError(f"invalid video id {video_id!r}: {reason}")
    return DataLayout(root).catalog_entry(video_id)


def register_videos(root: Path, entries: list[dict], source: str = "") -> list[str]:
    """Record entries (each with at least `video_id` and `url`) as listed from `source` (the project's source
    setting, e.g. `folder:/videos`); return the ids that were new."""
    new = []
    for entry in entries:
        path = _entry_path(root, entry["video_id"])
        if path.exists():
            continue
        write_json(path, {**entry, "source": source} if source else entry, default=str)
        new.append(entry["video_id"])
    return new


def of_source(root: Path, video_ids, source: str) -> tuple[list[str], list[str]]:
    """(ids registered from `source`, ids registered from another one). An entry that records no source counts
    as `source`'s."""
    mine, others = [], []
    for video_id in video_ids:
        path = _entry_path(root, video_id)
        recorded = json.loads(path.read_text()).get("source") if path.exists() else None
        (mine if recorded in (None, "", source) else others).append(video_id)
    return mine, others


def catalog_entry(root: Path, video_id: str) -> dict:
    path = _entry_path(root, video_id)
    if not path.exists():
        raise KeyError(f"video {video_id!r} is not in the catalog at {path.parent}: register it first")
    return json.loads(path.read_text())


def video_files(root: Path, video_id: str) -> list[Path]:
    """Every file or folder the per-video stages write for `video_id`."""
    return [_entry_path(root, video_id), *DataLayout(root).per_video_outputs(video_id)]


def _removed_path(root: Path) -> Path:
    return DataLayout(root).removed_list


def removed_ids(root: Path) -> set[str]:
    """Ids removed from the project on purpose (`remove_video`); listings leave them out."""
    path = _removed_path(root)
    return {line.strip() for line in path.read_text().splitlines() if line.strip()} if path.exists() else set()


def restore_video(root: Path, video_id: str) -> bool:
    """Forget a removal, so the next listing offers the video again; False if it was not removed."""
    ids = removed_ids(root)
    if video_id not in ids:
        return False
    _write_removed(root, ids - {video_id})
    return True


def _write_removed(root: Path, ids: set[str]) -> None:
    write_text(_removed_path(root), "".join(f"{i}\n" for i in sorted(ids)))


def remove_video(root: Path, video_id: str) -> list[Path]:
    """Delete a video's catalog entry and per-video outputs, and record the removal (so listings skip the id
    from now on); return what was deleted."""
    _entry_path(root, video_id)  # validates the id before anything is touched
    _write_removed(root, removed_ids(root) | {video_id})
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
