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


# A frames writer slowed to about 1 s per 8-frame chunk so that a kill lands mid-write (the writing is the real
# extract_frames; only its frame buffering sleeps).
SLOW_WRITER = """
import sys, time
from ahriuwu_core.data import frame_stream, frames

real_add = frame_stream.ChunkWriter.add
frame_stream.ChunkWriter.add = lambda self, img, copies: (time.sleep(0.12), real_add(self, img, copies))
frames.extract_frames(sys.argv[1], sys.argv[2], frames.FramesConfig(width=16, height=16, chunk_frames=8))
"""


def _kill_mid_write(clip, store):
    """Start a writer of `store` and SIGKILL it once a store in its folder holds a written frames chunk but not
    yet its actions array (written last); return that half-written store and the writer's pid."""
    import signal
    import sys
    import time

    def half_written():
        return [p for p in store.parent.iterdir() if (p / "frames/c/0/0/0/0").exists() and not (p / "actions").exists()]

    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(clip), str(store)], start_new_session=True)
    try:
        deadline = time.time() + 60
        while not half_written():
            assert proc.poll() is None, f"the writer exited ({proc.returncode}) before its first chunk"
            assert time.time() < deadline, "no chunk written in 60 s"
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    [half] = half_written()
    return half, proc.pid


def test_a_store_writer_killed_mid_write_leaves_the_previous_store_or_none_and_its_temp_is_swept(tmp_path):
    """kill -9 while extract_frames writes: a reader finds the previous complete store (its content matching its
    hash) or no store, never the half-written one; the dead writer's temp is swept, by `sweep` or by the next
    write into the folder."""
    import hashlib

    import numpy as np

    from ahriuwu_core.data.frames import FramesConfig, extract_frames, open_frames
    from ahriuwu_core.testing.media import make_clip

    old_clip = make_clip(tmp_path / "old.mp4", seconds=1.0, fps=20, width=32, height=32, pattern="textured")
    new_clip = make_clip(tmp_path / "new.mp4", seconds=3.0, fps=20, width=32, height=32, pattern="moving")
    folder = tmp_path / "frames"

    def whole(store):  # (frames, recorded hash), read as training does: every frame, hash compared
        group = open_frames(store, require=("frames", "actions", "has_actions", "hud_mask"))
        frames = np.asarray(group["frames"])
        assert hashlib.sha256(frames.tobytes()).hexdigest() == group.attrs["content_hash"]
        return frames

    # A store being replaced: readers keep the previous one.
    store = folder / "v.zarr"
    extract_frames(old_clip.path, store, FramesConfig(width=16, height=16, chunk_frames=8))
    before = whole(store)
    temp, pid = _kill_mid_write(new_clip.path, store)
    assert temp.name.startswith(f".v.tmp-{files.host_tag()}-{pid}-")  # written under a temp name beside the store
    assert np.array_equal(whole(store), before) and len(before) == 20
    assert files.sweep(folder) == [temp] and not temp.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["v.zarr"] and np.array_equal(whole(store), before)

    # A first write: no store at all, and the next write of the folder sweeps the dead one's temp.
    fresh = folder / "w.zarr"
    temp, pid = _kill_mid_write(new_clip.path, fresh)
    assert temp.name.startswith(f".w.tmp-{files.host_tag()}-{pid}-")
    with pytest.raises(FileNotFoundError, match="frames store not found"):
        open_frames(fresh)
    extract_frames(old_clip.path, fresh, FramesConfig(width=16, height=16, chunk_frames=8))
    assert not temp.exists() and sorted(p.name for p in folder.iterdir()) == ["v.zarr", "w.zarr"]
    assert np.array_equal(whole(fresh), before)
