"""How a training run stops and who owns its folder: a graceful stop on SIGTERM / SIGUSR1 at a checkpoint
boundary, an exit when the launching process dies, and one trainer per run folder."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable

from ..data.files import pid_lock


class StopRequested:
    """Context manager turning signals into a stop request the training loop polls:

    - SIGTERM -> stop at the next checkpoint boundary (`should_stop(at_boundary=True)` becomes True);
    - SIGUSR1 -> stop after the current step (`should_stop(...)` is True at once, boundary or not).

    On stop the loop must save its checkpoint before leaving, so the run resumes exactly. Handlers are
    installed on __enter__ (main thread only; elsewhere only `request()` works) and the previous handlers
    are restored on __exit__. `request("boundary" | "step")` triggers the same programmatically."""

    BOUNDARY = "boundary"
    STEP = "step"

    def __init__(self, install_handlers: bool = True, log: Callable[[str], None] = print):
        self.install_handlers = install_handlers
        self.log = log
        self.mode: str | None = None
        self._previous: dict = {}

    def request(self, mode: str = BOUNDARY) -> None:
        if mode not in (self.BOUNDARY, self.STEP):
            raise ValueError(f"stop mode must be 'boundary' or 'step', got {mode!r}")
        if self.mode != self.STEP:  # "step" is the stronger request; never downgrade it
            self.mode = mode

    @property
    def requested(self) -> bool:
        return self.mode is not None

    def should_stop(self, at_boundary: bool = False) -> bool:
        if self.mode == self.STEP:
            return True
        return self.mode == self.BOUNDARY and at_boundary

    def _on_signal(self, signum, frame):
        mode = self.STEP if signum == signal.SIGUSR1 else self.BOUNDARY
        self.log(
            f"received {signal.Signals(signum).name}: stopping "
            + ("after the current step" if mode == self.STEP else "at the next checkpoint boundary")
        )
        self.request(mode)

    def __enter__(self) -> "StopRequested":
        if self.install_handlers and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGUSR1):
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc) -> bool:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        return False


class ParentWatch:
    """Context manager noticing when the process that started this one dies (its parent pid changes: this
    process was reparented to init or a subreaper), so a trainer does not train on unseen after its launcher,
    e.g. a Dagster step process, was killed. It then calls `on_orphan` once (the trainer stops after the
    current step, checkpointing), and exits the process hard if it is still running `grace_s` later (a loop
    stuck in I/O or a collective never gets to stop).

    A daemon thread polls the parent pid every `interval` seconds; on Linux, PR_SET_PDEATHSIG also delivers
    `signum` at once (main thread only). That signal fires when the parent *thread* exits too, so it only
    prompts the same pid check."""

    def __init__(
        self,
        on_orphan: Callable[[], None],
        interval: float = 0.5,
        grace_s: float = 60.0,
        log: Callable[[str], None] = print,
        signum: int = signal.SIGUSR2,
    ):
        self.on_orphan = on_orphan
        self.interval = interval
        self.grace_s = grace_s
        self.log = log
        self.signum = signum
        self.parent = os.getppid()
        self.orphaned = False
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._previous = None
        self._prctl = None

    def check(self) -> bool:
        if os.getppid() == self.parent:
            return False
        with self._lock:
            if self.orphaned:
                return True
            self.orphaned = True
        with contextlib.suppress(Exception):  # stdout may be a pipe to the dead parent
            self.log(f"parent process {self.parent} is gone: stopping after the current step")
        self.on_orphan()
        if not self._done.is_set():
            threading.Thread(target=self._deadline, daemon=True).start()
        return True

    def _deadline(self):
        if not self._done.wait(self.grace_s):
            with contextlib.suppress(Exception):
                self.log(f"still running {self.grace_s}s after the parent died: exiting")
            os._exit(1)

    def _poll(self):
        while not self._done.wait(self.interval):
            if self.check():
                return

    def _on_signal(self, signum, frame):
        self.check()

    def __enter__(self) -> "ParentWatch":
        if self.parent <= 1:  # started by init (or as pid 1): no launcher to outlive
            return self
        if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread():
            with contextlib.suppress(OSError, AttributeError):
                prctl = ctypes.CDLL(None, use_errno=True).prctl
                self._previous = signal.signal(self.signum, self._on_signal)
                if prctl(1, int(self.signum), 0, 0, 0) == 0:  # PR_SET_PDEATHSIG
                    self._prctl = prctl
        threading.Thread(target=self._poll, daemon=True, name="parent-watch").start()
        self.check()  # the parent may have died before the signal was armed
        return self

    def __exit__(self, *exc) -> bool:
        self._done.set()
        if self._prctl is not None:
            self._prctl(1, 0, 0, 0, 0)
        if self._previous is not None:
            signal.signal(self.signum, self._previous)
        return False


def run_folder_lock(out_dir, log: Callable[[str], None] = print):
    """One trainer per run folder: out_dir/trainer.lock (files.pid_lock) while training; a second trainer on the
    folder fails at once with files.LockHeld naming the owner, and a dead owner's lock is broken."""
    return pid_lock(Path(out_dir) / "trainer.lock", log=log)


@contextlib.contextmanager
def stop_guards(log: Callable[[str], None] = print, exit_with_parent: bool = True):
    """StopRequested and, with `exit_with_parent`, a ParentWatch that asks it to stop after the current step.
    Yields (stop, watch or None); `watch.orphaned` says whether the parent's death was the reason."""
    with StopRequested(log=log) as stop:
        if not exit_with_parent:
            yield stop, None
            return
        with ParentWatch(lambda: stop.request(StopRequested.STEP), log=log) as watch:
            yield stop, watch
