"""The `dynamics` asset's external process in a real Pipes session: a launcher killed mid-training leaves the
trainer to checkpoint and exit quietly, its session folders are swept by the next session, and a run stopped
before its model is usable fails with a message saying where to resume from."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from ahriuwu_core.data import files
from ahriuwu_core.data.layout import DataLayout
from ahriuwu_core.training.checkpoint import read_checkpoint
from tests._trainers import REPO, running, wait_for_step
from tests.test_dynamics_train import make_stores, tiny_cfg


def _spec(tmp_path: Path, out: Path, **over) -> Path:
    # the train tests' tiny config, run long (the test stops it) and checkpointed rarely
    cfg = tiny_cfg(**{"steps": 100000, "ckpt_every": 1000, "num_threads": 1, **over})
    spec = tmp_path / f"{out.name}.json"
    spec.write_text(
        json.dumps(
            {
                "preset": "test",
                "config": dataclasses.asdict(cfg),
                "out_dir": str(out),
                "train_stores": [str(p) for p in make_stores(tmp_path / out.name)],
                "device": "cpu",
            }
        )
    )
    return spec


def _session(root: Path, spec: Path, stderr) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests._pipes_session", str(root), str(spec)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:  # it exited meanwhile
        return ""


def _child(proc: subprocess.Popen) -> int:
    """The trainer `proc` starts (from whichever of its threads). Dagster may start other children too, so it
    is picked by its command line."""
    deadline = time.time() + 60
    while time.time() < deadline:
        assert proc.poll() is None, f"the launcher exited ({proc.returncode}): {proc.stdout.read().decode()}"
        kids = [k for t in Path(f"/proc/{proc.pid}/task").iterdir() for k in (t / "children").read_text().split()]
        trainers = [k for k in kids if "pipeline.dynamics_pipes" in _cmdline(k)]
        if trainers:
            return int(trainers[0])
        time.sleep(0.05)
    raise AssertionError(f"process {proc.pid} started no trainer")


def test_killed_launcher_leaves_a_quiet_trainer_and_sweepable_session_files(tmp_path):
    root = tmp_path / "root"
    out = tmp_path / "run"
    errors = tmp_path / "stderr.txt"
    with open(errors, "w") as err:
        launcher = _session(root, _spec(tmp_path, out), err)
    trainer = _child(launcher)
    try:
        wait_for_step(out, 3, launcher)
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        launcher.stdout.close()  # the trainer's stdout is now a pipe nobody reads
        t = time.time()
        while running(trainer) and time.time() - t < 15:
            time.sleep(0.1)
        assert not running(trainer), f"trainer {trainer} still running 15 s after its launcher was killed"
    finally:
        if running(trainer):
            trainer_kill = subprocess.run(["kill", "-9", str(trainer)])
            assert trainer_kill.returncode == 0
    text = errors.read_text()
    assert "Traceback" not in text and "Error" not in text, text[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["stopped_by"] == "parent_died" and result["checkpoint"] is None
    assert read_checkpoint(out / "last.pt")["step"] == result["steps"]
    # The killed launcher's session files (context and messages) stay, named with its pid, under the data root's
    # tmp/ (never $TMPDIR) ...
    tmp = DataLayout(root).tmp_dir
    left = sorted(p.name for p in tmp.iterdir())
    assert len(left) == 2 and all(n.startswith(f".pipes.tmp-{files.host_tag()}-{launcher.pid}-") for n in left), left
    # ... until the next session sweeps them; it reports through its own, removed when it closes.
    with open(errors, "w") as err:
        second = _session(root, _spec(tmp_path, tmp_path / "second", steps=2), err)
    said = second.communicate(timeout=120)[0].decode()
    assert second.returncode == 0 and said.startswith("data_version "), said + errors.read_text()[-3000:]
    assert list(tmp.iterdir()) == []


def test_stopped_before_a_usable_model_fails_naming_where_to_resume(tmp_path):
    root = tmp_path / "root"
    out = tmp_path / "run"
    with open(tmp_path / "stderr.txt", "w") as err:
        launcher = _session(root, _spec(tmp_path, out), err)
    trainer = _child(launcher)
    try:
        wait_for_step(out, 2, launcher)
        subprocess.run(["kill", "-USR1", str(trainer)], check=True)  # stop after the current step
        said = launcher.communicate(timeout=60)[0].decode()
    finally:  # never leave a 100000-step trainer behind
        for pid in (trainer, launcher.pid):
            subprocess.run(["kill", "-KILL", str(pid)], stderr=subprocess.DEVNULL)
    result = json.loads((out / "result.json").read_text())
    assert result["stopped_by"] == "step" and result["checkpoint"] is None
    assert said.startswith("FAILED: "), said
    assert (
        f"dynamics training stopped at step {result['steps']} before finishing (step): no model to publish; "
        f"rematerialize to resume from {out / 'last.pt'}"
    ) in said, said
