"""A run killed while it holds the `gpu` pool slot: the next `make demo` marks it failed, frees the slot and
goes on, and so does the daemon's run monitoring (through the run launcher); a demo waiting for a slot a live
run holds sleeps, and stops at once on SIGTERM."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster._core.launcher import WorkerStatus
from dagster._core.storage.tags import WILL_RETRY_TAG

from ahriuwu_core.data.files import process_started
from ahriuwu_core.data.layout import DataLayout
from pipeline.run_health import slot_holders
from tests._instance import scratch_project

ROOT = Path(__file__).resolve().parents[1]
DEMO = [sys.executable, "-m", "pipeline.demo"]


@pytest.fixture(scope="module")
def demo_videos(tmp_path_factory) -> Path:
    """The tiny preset's demo videos, rendered once (each test's demo finds them and skips rendering)."""
    from ahriuwu_core.demo.video import write_demo_videos
    from ahriuwu_core.presets import get_preset

    folder = tmp_path_factory.mktemp("demo_source")
    write_demo_videos(folder, get_preset("tiny").demo)
    return folder


def _project(tmp_path: Path, demo_videos: Path, monkeypatch) -> dict:
    _, data_root = scratch_project(tmp_path, demo_videos, monkeypatch)
    monkeypatch.setenv("AHRIUWU_SOURCE", "demo")
    shutil.copytree(demo_videos, DataLayout(data_root).demo_source)
    return {**os.environ, "OMP_NUM_THREADS": "2"}  # PYTHONPATH and the scratch project travel with it


def _wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.time() + timeout
    while text not in log.read_text():
        assert proc.poll() is None, f"exited ({proc.returncode}) before {text!r}:\n{log.read_text()[-3000:]}"
        assert time.time() < deadline, f"no {text!r} after {timeout}s:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_a_run_killed_in_a_gpu_step_frees_its_slot_and_the_rerun_completes(tmp_path, demo_videos, monkeypatch):
    env = _project(tmp_path, demo_videos, monkeypatch)
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        first = subprocess.Popen(DEMO, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(log, 'Started execution of step "tokenizer"', first, 120)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    instance = DagsterInstance.get()
    killed = instance.get_runs(limit=1)[0]
    gpu = instance.event_log_storage.get_concurrency_info("gpu")
    # What used to hang the rerun: the dead run is STARTED and holds the only `gpu` slot.
    assert killed.status == DagsterRunStatus.STARTED
    assert [(s.run_id, s.step_key) for s in gpu.claimed_slots] == [(killed.run_id, "tokenizer")]
    # The daemon's health check (the launcher dagster.yaml configures) sees it dead too.
    health = instance.run_launcher.check_run_worker_health(killed)
    assert health.status == WorkerStatus.FAILED and str(first.pid) in health.msg

    # The rerun goes through every stage (the tiny preset: about 40 s) and publishes both models.
    start = time.time()
    log = tmp_path / "rerun.log"
    with open(log, "w") as out:
        rerun = subprocess.Popen(DEMO, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert rerun.wait(timeout=600) == 0, log.read_text()[-3000:]
        print(f"the rerun completed in {time.time() - start:.1f}s")
    finally:
        if rerun.poll() is None:
            os.killpg(rerun.pid, signal.SIGKILL)
            rerun.wait()
    text = log.read_text()
    host = socket.gethostname()
    assert f"run {killed.run_id}: the run's process {first.pid} on {host} died (killed?): marked failed" in text
    assert f"run {killed.run_id}: freed the pool slots it still held (FAILURE)" in text
    steps = ["tokenizer", *(f"latents[demo_{i:03d}]" for i in range(3)), "dynamics", "evaluation"]
    assert all(f"{step}: ok" in text for step in steps) and "failed:" not in text, text[-3000:]
    layout = DataLayout(Path(env["AHRIUWU_DATA_ROOT"]))
    assert layout.tokenizer_checkpoint.exists() and layout.dynamics_checkpoint.exists()
    assert list(layout.root.glob("reports/*/metrics.json"))
    killed = instance.get_run_by_id(killed.run_id)
    assert killed.status == DagsterRunStatus.FAILURE
    assert killed.tags[WILL_RETRY_TAG] == "false"  # the demo reruns it; the daemon must not retry it as well
    assert instance.event_log_storage.get_concurrency_info("gpu").claimed_slots == []
    instance.dispose()


HOLDER = """
import sys, time
from pathlib import Path
from dagster import DagsterInstance, asset, materialize
from pipeline.run_health import host_tags

release = Path(sys.argv[1])


@asset(pool="gpu")
def holder():
    print("holding the gpu slot", flush=True)
    deadline = time.time() + 120
    while not release.exists() and time.time() < deadline:
        time.sleep(0.1)


sys.exit(0 if materialize([holder], instance=DagsterInstance.get(), tags=host_tags(), raise_on_error=False).success
         else 1)
"""


def test_waiting_for_a_slot_a_live_run_holds_sleeps_and_sigterm_stops_it(tmp_path, demo_videos, monkeypatch):
    env = _project(tmp_path, demo_videos, monkeypatch)
    instance = DagsterInstance.get()
    # A live run of another process holds the slot: it blocks until the release file appears.
    release = tmp_path / "release"
    holder_log = tmp_path / "holder.log"
    with open(holder_log, "w") as out:
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(release)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    log = tmp_path / "demo.log"
    try:
        _wait_for(holder_log, "holding the gpu slot", holder, 120)
        with open(log, "w") as out:
            demo = subprocess.Popen(
                DEMO, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            _wait_for(log, "waiting for a `gpu` pool slot (1 in all), held by run", demo, 120)
            holder_run = next(r for r in instance.get_runs() if "ahriuwu/launched_by" not in r.tags)
            assert instance.run_launcher.check_run_worker_health(holder_run).status == WorkerStatus.RUNNING
            cpu = _cpu_seconds(demo.pid)
            time.sleep(3)
            used = _cpu_seconds(demo.pid) - cpu
            assert used < 0.5, f"the waiting demo used {used:.2f} CPU seconds in 3 s: it spins"
            demo.send_signal(signal.SIGTERM)
            sent = time.time()
            assert demo.wait(timeout=30) == 130
            print(f"stopped {time.time() - sent:.2f}s after SIGTERM")
        finally:
            if demo.poll() is None:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait()
        assert "\ninterrupted after" in log.read_text(), log.read_text()[-3000:]
        assert "Traceback" not in log.read_text()
        # It never started its tokenizer run.
        assert not any(AssetKey("tokenizer") in (r.asset_selection or ()) for r in instance.get_runs())
    finally:
        release.touch()
        try:
            holder.wait(120)
        finally:
            if holder.poll() is None:
                os.killpg(holder.pid, signal.SIGKILL)
    assert holder.returncode == 0, holder_log.read_text()[-3000:]  # the live holder was left alone
    instance.dispose()


def test_process_started_tells_running_from_gone_and_zombie():
    before = time.time()
    proc = subprocess.Popen(["sleep", "30"])
    started = process_started(proc.pid)
    assert started is not None and before - 1.5 <= started <= time.time() + 1.5
    proc.kill()
    time.sleep(0.2)
    assert process_started(proc.pid) is None  # a zombie, not yet reaped, is gone
    proc.wait()
    assert process_started(proc.pid) is None


HOLD_GPU = """
import sys, time
from dagster import DagsterInstance, asset, materialize
from pipeline.run_health import host_tags

@asset(pool="gpu")
def holder():
    print("holding", flush=True)
    time.sleep(120)

materialize([holder], instance=DagsterInstance.get(), tags=host_tags())
"""


def test_the_daemons_run_monitoring_fails_a_killed_run_and_frees_its_slots(tmp_path, monkeypatch):
    import datetime
    import logging

    from dagster._daemon.monitoring import concurrency, run_monitoring

    scratch_project(tmp_path, tmp_path / "no_videos", monkeypatch)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_GPU],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert proc.stdout.readline() == b"holding\n"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    instance = DagsterInstance.get()
    run = instance.get_runs(limit=1)[0]
    assert run.status == DagsterRunStatus.STARTED

    class Workspace:  # what the monitoring iterations use of the daemon's workspace (no run is resumed)
        def __init__(self):
            self.instance = instance

        def create_request_context(self):
            return None

    list(run_monitoring.execute_run_monitoring_iteration(Workspace(), logging.getLogger("test")))
    run = instance.get_run_by_id(run.run_id)
    assert run.status == DagsterRunStatus.FAILURE
    failure = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_FAILURE)[-1].dagster_event.message
    assert f"the run's process {proc.pid} on {socket.gethostname()} died" in failure, failure
    gpu = lambda: instance.event_log_storage.get_concurrency_info("gpu").claimed_slots  # noqa: E731
    assert gpu(), "slots are freed free_slots_after_run_end_seconds after the run ends, not at once"
    assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 60
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=61)
    monkeypatch.setattr(concurrency, "get_current_datetime", lambda: later)
    list(concurrency.execute_concurrency_slots_iteration(Workspace(), logging.getLogger("test")))
    assert gpu() == []
    instance.dispose()


def test_a_sigterm_that_a_run_catches_and_drops_still_stops_the_demo():
    """Inside a run Dagster replaces the handlers with one that only records the interrupt, and forgets it when
    the run ends; the demo's SignalLog (the signal wakeup fd) still sees it."""
    script = (
        "import os, signal\n"
        "from pipeline.demo import SignalLog\n"
        "log = SignalLog()\n"
        "log.start()\n"
        "assert not log.stop_requested()\n"
        "signal.signal(signal.SIGTERM, lambda *a: None)  # what a run installs: record, do not raise\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "assert log.stop_requested() and not log.stop_requested()\n"
        "print('seen')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AHRIUWU_AUTOMATION": "off"},
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("seen"), done.stdout + done.stderr


def test_sigterm_stops_a_demo_started_with_sigint_ignored(tmp_path, demo_videos, monkeypatch):
    """`python -m pipeline.demo &` from a script inherits an ignored SIGINT, and Dagster gives SIGTERM SIGINT's
    handler after each run: the demo takes SIGINT back, so SIGTERM still stops it between and during runs."""
    env = _project(tmp_path, demo_videos, monkeypatch)
    log = tmp_path / "demo.log"
    with open(log, "w") as out:
        demo = subprocess.Popen(
            DEMO,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    try:
        _wait_for(log, "frames[", demo, 120)  # past its first runs
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=60) == 130, log.read_text()[-3000:]
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)


def _cli(select: str, log: Path, env: dict) -> subprocess.Popen:
    """`dagster asset materialize` as a user types it, on the project's executor."""
    cmd = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "tests._pool_location"]
    with open(log, "w") as out:
        return subprocess.Popen(
            [*cmd, "--select", select], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_a_cli_run_killed_while_waiting_for_the_slot_never_holds_it_and_waiters_name_the_holder(tmp_path, monkeypatch):
    """A CLI run waits on a live holder and says so at INFO; it is killed; the holder ends, so Dagster hands the slot
    to the dead run. The next CLI run, with no daemon, fails the dead run, frees the slot and completes."""
    scratch_project(tmp_path, tmp_path / "no_videos", monkeypatch)
    env = {**os.environ, "POOL_TEST_RELEASE": str(tmp_path / "release")}
    instance = DagsterInstance.get()
    holder = _cli("holder", tmp_path / "holder.log", env)
    waiter = third = None
    try:
        _wait_for(tmp_path / "holder.log", "holding the gpu slot", holder, 120)
        holder_run = instance.get_runs(limit=1)[0]
        waiter = _cli("quick", tmp_path / "waiter.log", env)
        said = f"step quick waiting for a `gpu` pool slot (1 in all), held by run {holder_run.run_id} (step holder)"
        _wait_for(tmp_path / "waiter.log", said, waiter, 120)
        waiter_run = instance.get_runs(limit=1)[0]
        assert waiter_run.tags["ahriuwu/host"] == socket.gethostname()  # tagged by the executor, not by a launcher
        info = [e for e in instance.all_logs(waiter_run.run_id) if e.user_message == said]
        assert info and info[0].level == logging.INFO
        _stop(waiter)
        (tmp_path / "release").touch()
        assert holder.wait(timeout=120) == 0, (tmp_path / "holder.log").read_text()[-3000:]
        # What used to wedge the pool: the slot went to the killed run's pending step.
        gpu = instance.event_log_storage.get_concurrency_info("gpu")
        assert slot_holders(gpu) == [(waiter_run.run_id, "quick")]

        third = _cli("quick", tmp_path / "third.log", env)
        assert third.wait(timeout=120) == 0, (tmp_path / "third.log").read_text()[-3000:]
        text = (tmp_path / "third.log").read_text()
        assert f"held by run {waiter_run.run_id} (step quick)" in text
        assert f"run {waiter_run.run_id}: the run's process" in text and "died (killed?): marked failed" in text
        assert "quick ran" in text
    finally:
        for proc in (holder, waiter, third):
            if proc is not None:
                _stop(proc)
    assert instance.get_run_by_id(waiter_run.run_id).status == DagsterRunStatus.FAILURE
    assert slot_holders(instance.event_log_storage.get_concurrency_info("gpu")) == []
    instance.dispose()
