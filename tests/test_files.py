"""Atomic writes and the leftover sweep (ahriuwu_core/data/files.py), on real files and folders."""

import os
import subprocess

import pytest

from ahriuwu_core.data import files


def test_a_write_lands_whole_or_not_at_all(tmp_path):
    target = tmp_path / "sub" / "manifest.json"
    files.write_json(target, {"a": 1})
    assert target.read_text() == '{\n "a": 1\n}'
    with pytest.raises(RuntimeError):
        with files.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == '{\n "a": 1\n}'  # the old content survives a failed write
    assert sorted(p.name for p in target.parent.iterdir()) == ["manifest.json"]  # and no temp is left


def test_a_folder_replaces_a_folder(tmp_path):
    store = tmp_path / "v.zarr"
    for content in ("first", "second"):
        with files.atomic_path(store) as tmp:
            assert tmp.name.startswith(".v.tmp-") and tmp.suffix == ".zarr"  # the suffix is kept
            tmp.mkdir()
            (tmp / "data").write_text(content)
    assert (store / "data").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.zarr"]  # the set-aside old store is gone


def test_sweep_removes_only_dead_writers_leftovers(tmp_path):
    here = files.host_tag()
    live = subprocess.Popen(["sleep", "30"])
    try:
        dead_file = tmp_path / f".tokenizer.tmp-{here}-999999999-0123abcd.pt"
        dead_dir = tmp_path / f".v.tmp-{here}-999999999-0123abcd.zarr"
        dead_old = tmp_path / f".v.zarr.old-{here}-999999999-0123abcd"
        alive = tmp_path / f".w.tmp-{here}-{live.pid}-0123abcd.zarr"
        mine = tmp_path / f".m.tmp-{here}-{os.getpid()}-0123abcd.json"
        keep = [tmp_path / "v.zarr", tmp_path / ".hidden", tmp_path / f"x.tmp-{here}-999999999-0123abcd"]
        dead_file.write_text("x")
        for d in (dead_dir, dead_old, alive, keep[0]):
            d.mkdir()
        mine.write_text("x")
        keep[1].write_text("x")
        keep[2].write_text("x")
        removed = files.sweep(tmp_path)
        assert sorted(removed) == sorted([dead_file, dead_dir, dead_old])
        assert alive.exists() and mine.exists() and all(p.exists() for p in keep)
    finally:
        live.kill()


def test_temps_carry_the_host_and_another_hosts_temps_go_only_when_old(tmp_path):
    """On a volume that several machines mount, a pid means nothing to another host: its writer's temps stay
    while they may be in progress, and go once untouched for FOREIGN_TEMP_MAX_AGE_S."""
    with files.atomic_path(tmp_path / "v.zarr") as tmp:
        assert tmp.name.startswith(f".v.tmp-{files.host_tag()}-{os.getpid()}-")
        tmp.mkdir()
    other = tmp_path / ".w.tmp-otherpod-1-0123abcd.zarr"  # pid 1 is alive here, and means nothing there
    other_dead_pid = tmp_path / ".x.tmp-otherpod-999999999-0123abcd.zarr"
    for d in (other, other_dead_pid):
        d.mkdir()
    assert files.sweep(tmp_path) == []  # a dead pid on another host proves nothing
    later = other.stat().st_mtime + files.FOREIGN_TEMP_MAX_AGE_S + 1
    assert sorted(files.sweep(tmp_path, now=later)) == sorted([other, other_dead_pid])


@pytest.fixture
def full_disk(tmp_path):
    """A real file system with 256 KiB: a tmpfs mounted for the test (the suite runs as root)."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_is_named_with_the_path_by_every_writer(full_disk):
    """Plain files, torch checkpoints and zarr stores: each says "no space left on device writing <path>", and
    leaves neither the target nor a temp behind."""
    import numpy as np
    import torch
    import zarr

    from ahriuwu_core.training.checkpoint import save_checkpoint

    big = np.random.default_rng(0).integers(0, 255, 1 << 20, dtype=np.uint8)  # 1 MiB that does not compress

    def write_store(path):
        with files.atomic_path(path) as tmp:
            g = zarr.open_group(str(tmp), mode="w")
            g.create_array("x", shape=big.shape, dtype=big.dtype, chunks=(1 << 16,))[:] = big

    writers = {
        "bytes.bin": lambda path: files.write_bytes(path, big.tobytes()),
        "model.pt": lambda path: save_checkpoint(path, model=torch.nn.Linear(512, 512), config={}, kind="test"),
        "store.zarr": write_store,
    }
    for name, write in writers.items():
        target = full_disk / name
        with pytest.raises(files.NoSpaceError, match=f"no space left on device writing {target}$"):
            write(target)
        assert list(full_disk.iterdir()) == [], name  # nothing half-written, no temp


def test_rotate_keeps_both_names_readable(tmp_path):
    """The current file stays in place while its previous copy is made; the rewrite then replaces only it."""
    from ahriuwu_core.data.files import rotate, write_bytes

    last, prev = tmp_path / "last.pt", tmp_path / "last.prev.pt"
    assert rotate(last, prev) is False and not prev.exists()
    write_bytes(last, b"one")
    assert rotate(last, prev) and last.read_bytes() == b"one" and prev.read_bytes() == b"one"
    write_bytes(last, b"two")
    assert last.read_bytes() == b"two" and prev.read_bytes() == b"one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.prev.pt", "last.pt"]  # no temps left


def test_old_run_folders_are_pruned_but_never_the_current_or_a_live_one(tmp_path):
    import socket
    import time

    from ahriuwu_core.data.files import prune_runs

    runs = tmp_path / "runs"
    for name in ["a", "b", "c", "d", "e"]:
        (runs / name).mkdir(parents=True)
        (runs / name / "last.pt").write_bytes(b"x")
    (runs / "b" / "trainer.lock").write_text(f"{os.getpid()} {socket.gethostname()}")  # a live trainer's
    (runs / "c" / "trainer.lock").write_text(f"999999999 {socket.gethostname()}")  # a dead one's
    for i, name in enumerate(["a", "b", "c", "d", "e"]):  # a oldest ... e newest
        t = time.time() - 100 + i
        os.utime(runs / name, (t, t))
    removed = prune_runs(runs, keep=2, current=runs / "a", log=lambda m: None)
    assert sorted(p.name for p in removed) == ["c"]
    assert sorted(p.name for p in runs.iterdir()) == ["a", "b", "d", "e"]
    assert prune_runs(runs, keep=0, current=runs / "e") == []  # 0 keeps all
