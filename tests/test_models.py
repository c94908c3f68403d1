"""Published models, content-addressed (ahriuwu_core/data/models.py): a link to the current one, older ones kept
until pruned, found by sha256 prefix; and the provenance that reads them (latents, the world model's inputs)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from ahriuwu_core.data import models
from ahriuwu_core.data.layout import DataLayout
from ahriuwu_core.data.manifest import file_sha256
from ahriuwu_core.tokenizer.encode import encoded_with

ROOT = Path(__file__).resolve().parents[1]


def _checkpoint(tmp_path: Path, name: str, payload: bytes) -> Path:
    path = tmp_path / "runs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def test_publish_links_the_current_model_and_keeps_every_older_one(tmp_path):
    layout = DataLayout(tmp_path / "root")
    assert models.current(layout, "tokenizer") is None
    first, sha1 = models.publish(layout, "tokenizer", _checkpoint(tmp_path, "a.pt", b"first"))
    link = layout.checkpoint("tokenizer")
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))  # relative: the root may move
    assert first == layout.stage_dir("tokenizer") / "models" / f"{sha1[:16]}.pt" and sha1 == file_sha256(first)
    assert link.read_bytes() == b"first" and models.current(layout, "tokenizer") == (first, sha1)
    second, sha2 = models.publish(layout, "tokenizer", _checkpoint(tmp_path, "b.pt", b"second"))
    assert link.read_bytes() == b"second" and first.read_bytes() == b"first"  # the older one stays readable
    again, sha = models.publish(layout, "tokenizer", _checkpoint(tmp_path, "c.pt", b"second"))
    assert (again, sha) == (second, sha2) and len(list(first.parent.iterdir())) == 2  # same bytes: same model
    assert not [p for p in link.parent.iterdir() if ".tmp-" in p.name]  # no link temp left behind
    moved = tmp_path / "moved"
    (tmp_path / "root").rename(moved)
    assert DataLayout(moved).checkpoint("tokenizer").read_bytes() == b"second"


def test_find_by_prefix_or_path_and_clear_errors(tmp_path):
    layout = DataLayout(tmp_path)
    with pytest.raises(FileNotFoundError, match="no dynamics model is published"):
        models.find(layout, "dynamics")
    old, old_sha = models.publish(layout, "dynamics", _checkpoint(tmp_path, "a.pt", b"old"))
    new, new_sha = models.publish(layout, "dynamics", _checkpoint(tmp_path, "b.pt", b"new"))
    assert models.find(layout, "dynamics") == (new, new_sha)
    assert models.find(layout, "dynamics", old_sha[:8]) == (old, old_sha)
    assert models.find(layout, "dynamics", old_sha) == (old, old_sha)  # the whole sha, as the metadata has it
    assert models.find(layout, "dynamics", str(old)) == (old, old_sha)
    with pytest.raises(ValueError, match="'abc'"):
        models.find(layout, "dynamics", "abc")
    with pytest.raises(FileNotFoundError, match="0 published models match"):
        models.find(layout, "dynamics", "0" * 8 if not old_sha.startswith("0" * 8) else "f" * 8)


def test_prune_keeps_the_newest_and_always_the_current(tmp_path):
    layout = DataLayout(tmp_path)
    paths = []
    for i in range(4):
        path, _ = models.publish(layout, "dynamics", _checkpoint(tmp_path, f"{i}.pt", f"model {i}".encode()))
        os.utime(path, (time.time() - 100 + i, time.time() - 100 + i))
        paths.append(path)
    models.publish(layout, "dynamics", _checkpoint(tmp_path, "again.pt", b"model 0"))  # the oldest is current
    os.utime(paths[0], (time.time() - 200, time.time() - 200))
    out = subprocess.run(
        [sys.executable, "-m", "ahriuwu_core.cli.prune_models", "--data-root", str(tmp_path), "--keep", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "dynamics: removed 2 model(s)" in out.stdout and "tokenizer: removed 0 model(s)" in out.stdout
    assert [p.exists() for p in paths] == [True, False, False, True]  # the current one, and the newest


def _latents(path: Path, sha: str) -> Path:
    group = zarr.open_group(str(path), mode="w")
    group.create_array("latents", data=np.zeros((2, 1, 1), np.float16))
    group.attrs["tokenizer_sha256"] = sha
    return path


def test_training_takes_the_current_tokenizers_latents_and_names_the_others(tmp_path):
    a, b = "a" * 64, "b" * 64
    current = _latents(tmp_path / "v0.zarr", a)
    stale = _latents(tmp_path / "v1.zarr", b)
    used, left_out = encoded_with([current, stale, tmp_path / "v2.zarr"], a)
    assert used == [current]
    assert left_out == {"v1": "encoded by tokenizer bbbbbbbbbbbbbbbb, not aaaaaaaaaaaaaaaa", "v2": "no latents"}
