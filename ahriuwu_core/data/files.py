"""Atomic writes, and the sweep of what killed writers leave behind. Nothing else renames a temp file.

A reader never sees half a file or half a store: every output is written under a temp name beside its target,
then renamed over it. A temp is `.<stem>.tmp-<host>-<pid>-<token><suffix>` (the suffix kept, for writers that
pick a format by extension), and a store or folder being replaced waits as `.<name>.old-<host>-<pid>-<token>`
until the new one is in place. Host and pid let `sweep` tell a dead writer's leftovers from a live writer's work
in progress. On a volume that several machines share, a sweep judges only its own host's temps by pid; another
host's temps go only once untouched for `FOREIGN_TEMP_MAX_AGE_S`, since this host cannot see that writer.

A write that fills the disk raises `NoSpaceError` ("no space left on device writing <path>"), whatever the
writer (zarr, torch.save, plain files) made of the ENOSPC underneath.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

_LEFTOVER = re.compile(r"^\..+\.(tmp|old)-([A-Za-z0-9_]+)-(\d+)-[0-9a-f]{8}")
# Another host's temp is removed only after this long untouched: no write in this project pauses for a day.
FOREIGN_TEMP_MAX_AGE_S = 24 * 3600


class NoSpaceError(OSError):
    """The disk filled while writing `path`; nothing half-written is left at `path`."""


def host_tag() -> str:
    """This host's name as it goes into temp names (letters, digits and underscores only)."""
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:48] or "host"


def _writer_tag() -> str:
    return f"{host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def temp_path(final: Path) -> Path:
    final = Path(final)
    return final.with_name(f".{final.stem}.tmp-{_writer_tag()}{final.suffix}")


def _no_space(error: BaseException) -> bool:
    """Whether `error` or anything it was raised from or during is ENOSPC (torch.save, for one, wraps it in a
    RuntimeError whose message does not say so)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        error = error.__cause__ or error.__context__
    return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def replace(tmp: Path, final: Path) -> Path:
    """Move a finished file or folder `tmp` to `final`. An existing folder at `final` is set aside, then
    deleted once the new one is in place (a folder cannot be renamed over a non-empty one)."""
    tmp, final = Path(tmp), Path(final)
    if tmp.is_dir() and final.exists():
        old = final.with_name(f".{final.name}.old-{_writer_tag()}")
        os.replace(final, old)
        os.replace(tmp, final)
        _remove(old)
    else:
        os.replace(tmp, final)
    return final


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temp path beside `final` to write a file or a folder (e.g. a zarr store) into. On success it
    replaces `final`; on any error it is removed and `final` is left as it was. Dead writers' leftovers in the
    same folder are swept first."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep(final.parent)
    tmp = temp_path(final)
    try:
        yield tmp
    except BaseException as e:
        _remove(tmp)
        if _no_space(e) and not isinstance(e, NoSpaceError):
            raise NoSpaceError(errno.ENOSPC, f"no space left on device writing {final}") from e
        raise
    replace(tmp, final)


def write_bytes(path: Path, data: bytes, fsync: bool = False) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
    return Path(path)


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode())


def write_json(path: Path, obj: Any, indent: int | None = 1, **kwargs) -> Path:
    return write_text(path, json.dumps(obj, indent=indent, **kwargs))


def save_torch(obj: Any, path: Path) -> Path:
    """torch.save, fsynced: a checkpoint that survives a crash right after the rename."""
    import torch

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def copy_file(src: Path, dst: Path) -> Path:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


def rotate(path: Path, previous: Path) -> bool:
    """Make `previous` (replacing it) a copy of `path` before `path` is rewritten, so one older version survives
    a damaged rewrite. `path` itself stays in place until its atomic rewrite replaces it: a kill at any moment
    leaves both names readable. Returns whether there was anything to keep."""
    path, previous = Path(path), Path(previous)
    if not path.exists():
        return False
    with atomic_path(previous) as tmp:
        try:
            os.link(path, tmp)  # a second name for the same bytes: instant, and the rewrite makes a new file
        except OSError:
            shutil.copy2(path, tmp)
    return True


class LockHeld(RuntimeError):
    pass


def _lock_owner(path: Path) -> tuple[int, str] | None:
    try:
        pid, _, host = path.read_text().strip().partition(" ")
        return int(pid), host
    except (FileNotFoundError, ValueError):
        return None


@contextlib.contextmanager
def pid_lock(path: Path, log=print) -> Iterator[Path]:
    """Hold the lock file `path` ("<pid> <host>") while the block runs; a second holder fails at once with
    LockHeld naming the folder and the owner. A lock left by a dead process on this host is broken (logged)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = (os.getpid(), socket.gethostname())
    tmp = temp_path(path)
    tmp.write_text(f"{me[0]} {me[1]}\n")
    try:
        for _ in range(5):
            try:  # link() is atomic and fails if `path` exists, and the lock is never seen without its pid
                os.link(tmp, path)
                break
            except FileExistsError:
                pass
            owner = _lock_owner(path)
            if owner is None:
                continue  # vanished (released) between link and read: try again
            pid, host = owner
            if host != me[1] or pid_alive(pid):
                raise LockHeld(
                    f"run folder {path.parent} is in use by process {pid} on {host} (lock {path}); "
                    f"remove the lock if that process is not a trainer"
                )
            # Set the stale lock aside before deleting it: of two processes breaking it at once, one gets it;
            # should that be a fresh lock a racer just took, it goes back.
            aside = path.with_name(f".{path.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
            try:
                os.replace(path, aside)
            except FileNotFoundError:
                continue
            taken = _lock_owner(aside)
            if taken is not None and taken != owner and pid_alive(taken[0]):
                with contextlib.suppress(FileExistsError):
                    os.link(aside, path)
                aside.unlink()
                raise LockHeld(f"run folder {path.parent} is in use by process {taken[0]} on {taken[1]} (lock {path})")
            aside.unlink()
            log(f"removed stale lock {path} of process {pid}, which is no longer running")
        else:
            raise LockHeld(f"could not take the lock {path} of run folder {path.parent}")
    finally:
        tmp.unlink()
    try:
        yield path
    finally:
        if _lock_owner(path) == me:  # never remove a lock someone else took after a forced break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def process_started(pid: int) -> float | None:
    """When the running process `pid` started (epoch seconds, within about a second), or None when no such
    process runs (a zombie counts as gone). Comparing it with when a pid was recorded tells a reused pid from
    the process that recorded it. Off Linux, without /proc: 0.0 (started, time unknown) while the pid is alive."""
    if not sys.platform.startswith("linux"):
        return 0.0 if pid_alive(pid) else None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(int(line.split()[1]) for line in open("/proc/stat") if line.startswith("btime"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def sweep(folder: Path, now: float | None = None) -> list[Path]:
    """Remove the temps and set-aside folders in `folder` whose writer is gone: this host's whose pid is dead,
    and other hosts' untouched for FOREIGN_TEMP_MAX_AGE_S. Returns what was removed."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    here, now = host_tag(), time.time() if now is None else now
    for entry in folder.iterdir():
        m = _LEFTOVER.match(entry.name)
        if not m:
            continue
        host, pid = m.group(2), int(m.group(3))
        if host == here:
            gone = pid != os.getpid() and not pid_alive(pid)
        else:
            try:
                gone = now - entry.lstat().st_mtime > FOREIGN_TEMP_MAX_AGE_S
            except FileNotFoundError:
                continue
        if gone:
            _remove(entry)
            removed.append(entry)
    return removed


def prune_runs(runs_dir: Path, keep: int, current: Path, lock_name: str = "trainer.lock", log=print) -> list[Path]:
    """Remove the oldest run folders in `runs_dir` (by last change) beyond the `keep` newest, never `current` and
    never one whose lock a live process on this host holds; keep <= 0 keeps all. Returns what was removed."""
    runs_dir, current = Path(runs_dir), Path(current).resolve()
    if keep <= 0 or not runs_dir.is_dir():
        return []
    runs = sorted(
        (p for p in runs_dir.iterdir() if p.is_dir() and not _LEFTOVER.match(p.name)),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    removed = []
    for run in runs[keep:]:
        owner = _lock_owner(run / lock_name)
        if run.resolve() == current or (owner and owner[1] == socket.gethostname() and pid_alive(owner[0])):
            continue
        _remove(run)
        removed.append(run)
        log(f"removed old training run {run} (keeping the {keep} newest)")
    return removed
