"""Published models, content-addressed: each one a file named by its sha256 in `<stage>/models/`, never rewritten,
and `<stage>/<stage>.pt` a symbolic link to the current one, switched atomically.

Readers resolve the link once and read the file it names, so what they loaded and what they record are the same
bytes, even if a newer model is published meanwhile; an older model stays readable (evaluated, played) until
`prune` removes it."""

from __future__ import annotations

import os
from pathlib import Path

from .files import copy_file, replace, temp_path
from .layout import DataLayout
from .manifest import file_sha256

SHA_NAME_CHARS = 16  # of the sha256 in a model's file name; its metadata records the whole


def model_path(layout: DataLayout, stage: str, sha256: str) -> Path:
    return layout.stage_dir(stage) / "models" / f"{sha256[:SHA_NAME_CHARS]}.pt"


def publish(layout: DataLayout, stage: str, checkpoint: Path) -> tuple[Path, str]:
    """Make `checkpoint` the stage's current model. Returns (its content-addressed path, its sha256). Publishing the
    same bytes again changes nothing."""
    sha = file_sha256(checkpoint)
    path = model_path(layout, stage, sha)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        copy_file(checkpoint, path)
    current = layout.checkpoint(stage)
    link = temp_path(current)
    os.symlink(os.path.relpath(path, current.parent), link)  # relative: the data root may move or be mounted
    replace(link, current)  # readers see the old model or the new one, never neither
    return path, sha


def current(layout: DataLayout, stage: str) -> tuple[Path, str] | None:
    """(the current model's content-addressed path, its sha256), or None when none was published. A plain file at
    the link's place (a data root from before content addressing, or one copied without links) is read as is."""
    link = layout.checkpoint(stage)
    if not link.exists():
        return None
    path = link.resolve()
    return path, file_sha256(path)


def prune(layout: DataLayout, stage: str, keep: int) -> list[Path]:
    """Remove all but the `keep` newest published models of a stage, never the current one. Returns the removed."""
    folder = layout.stage_dir(stage) / "models"
    now = current(layout, stage)
    models = sorted(folder.glob("*.pt"), key=lambda p: p.stat().st_mtime, reverse=True) if folder.exists() else []
    removed = [p for p in models[keep:] if now is None or p.resolve() != now[0]]
    for p in removed:
        p.unlink()
    return removed


def find(layout: DataLayout, stage: str, ref: str = "") -> tuple[Path, str]:
    """A published model of a stage: the current one for "", else the one a path or a sha256 prefix (at least 8
    characters, as a materialization's `model_sha256`) names. (path, sha256); a clear error when there is none."""
    if not ref:
        now = current(layout, stage)
        if now is None:
            raise FileNotFoundError(f"no {stage} model is published ({layout.checkpoint(stage)})")
        return now
    if Path(ref).is_file():
        return Path(ref).resolve(), file_sha256(ref)
    if len(ref) < 8 or not all(c in "0123456789abcdef" for c in ref.lower()):
        raise ValueError(f"{stage} model {ref!r}: neither a file nor a sha256 prefix of 8 or more hex characters")
    prefix = ref.lower()[:SHA_NAME_CHARS]
    candidates = sorted((layout.stage_dir(stage) / "models").glob(f"{prefix}*.pt"))
    found = [(p.resolve(), sha) for p in candidates if (sha := file_sha256(p)).startswith(ref.lower())]
    if len(found) != 1:
        raise FileNotFoundError(
            f"{stage} model {ref!r}: {len(found)} published models match in {layout.stage_dir(stage) / 'models'}"
        )
    return found[0]
