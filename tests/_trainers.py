"""Shared pieces of the trainer process tests: waiting for a logged step, and killing a trainer's parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def wait_for_step(out: Path, step: int, proc, timeout=90):
    """Until out/train_log.jsonl logs `step`; fails with `proc`'s output should it exit first."""
    log = out / "train_log.jsonl"
    t = time.time()
    while time.time() - t < timeout:
        if log.exists():
            lines = log.read_text().splitlines()
            if lines and json.loads(lines[-1])["step"] >= step:
                return
        assert proc.poll() is None, proc.stdout.read().decode()
        time.sleep(0.05)
    raise AssertionError("training did not reach step %d" % step)


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for whoever adopted it to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def kill_parent_of(cmd: list[str], out: Path, trainer_log: Path, within: float = 10) -> int:
    """Start the trainer `cmd` (writing out/train_log.jsonl) from a launcher standing in for the Dagster step
    process, SIGKILL the launcher once step 3 is logged, and assert the trainer exits within `within` seconds.
    Returns the last step logged before the kill."""
    # The launcher sends the trainer's output to a file, not a pipe to itself (which would break on its death
    # anyway), reports its pid and waits on it.
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; p = subprocess.Popen(sys.argv[2:], stdout=open(sys.argv[1], "
            "'w'), stderr=subprocess.STDOUT); print(p.pid, flush=True); p.wait()",
            str(trainer_log),
            *cmd,
        ],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    trainer = int(launcher.stdout.readline())
    try:
        wait_for_step(out, 3, launcher)
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        seen = json.loads((out / "train_log.jsonl").read_text().splitlines()[-1])["step"]
        t = time.time()
        while running(trainer) and time.time() - t < within:
            time.sleep(0.1)
        assert not running(trainer), f"trainer {trainer} still running {within} s after its parent was killed"
    finally:
        if running(trainer):
            os.kill(trainer, signal.SIGKILL)
    return seen
