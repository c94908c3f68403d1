"""The dynamics asset's multi-rank launch: 2 CPU ranks train as one, and every socket any of its processes
listens on is bound to loopback (torchrun's stores bind every interface); a failing rank stops the others; 2 ranks
train what one process trains on their global batch; SIGTERM to the launcher reaches the ranks."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ahriuwu_core.dynamics.launch import launch
from pipeline.cluster import dynamics_command
from tests._trainers import REPO
from tests.test_dynamics_pipes import _spec


def _tree(root: int) -> list[int]:
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        with_children = Path(f"/proc/{pid}/task")
        if with_children.exists():
            for task in with_children.iterdir():
                try:
                    todo += [int(k) for k in (task / "children").read_text().split()]
                except FileNotFoundError:
                    pass
    return pids


def _address(hex_address: str) -> tuple[str, int]:
    ip, port = hex_address.split(":")
    raw = bytes.fromhex(ip)  # /proc/net/tcp*: the address in 32-bit words of host (little-endian) order
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(raw)), int(port, 16)


def _listening(pid: int) -> set[tuple[str, int]]:
    """The TCP sockets process `pid` holds open in LISTEN state, as (address, port)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.add(_address(fields[1]))
    return found


def test_two_ranks_listen_on_loopback_only(tmp_path):
    out = tmp_path / "run"
    spec = _spec(tmp_path, out, steps=30)
    command = dynamics_command(spec, nproc_per_node=2, python=sys.executable)
    assert command[1:3] == ["-m", "ahriuwu_core.dynamics.launch"]
    proc = subprocess.Popen(
        command, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    seen: dict[tuple[str, int], set[int]] = {}
    pids: set[int] = set()
    while proc.poll() is None:
        for pid in _tree(proc.pid):
            try:
                for address in _listening(pid):
                    seen.setdefault(address, set()).add(pid)
                pids.add(pid)
            except FileNotFoundError:  # exited meanwhile
                pass
        time.sleep(0.02)
    said = proc.stdout.read().decode()
    assert proc.returncode == 0, said[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["world_size"] == 2 and result["completed"] and result["ranks_in_sync"]
    assert len(pids) >= 3 and seen, (pids, seen)  # the launcher and 2 ranks; gloo's listeners were seen
    off_loopback = {f"{a}:{p}": sorted(v) for (a, p), v in seen.items() if not ipaddress.ip_address(a).is_loopback}
    assert not off_loopback, f"listening off loopback: {off_loopback}"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".rendezvous")]  # its store file is removed


def test_a_failing_rank_stops_the_others(tmp_path):
    script = "import os, sys, time; sys.exit(3) if os.environ['RANK'] == '1' else time.sleep(120)"
    lines = []
    start = time.monotonic()
    assert launch(2, [sys.executable, "-c", script], tmp_path, grace_s=5, log=lines.append) == 3
    assert time.monotonic() - start < 30
    assert lines == ["rank 1 exited with status 3: stopping the others"]


def _launcher(nproc: int, config: dict, out: Path, **popen) -> subprocess.Popen:
    """The default launcher (`python -m ahriuwu_core.dynamics.launch`) running the trainer's CLI as `nproc` ranks."""
    train = [sys.executable, "-m", "ahriuwu_core.cli.train_dynamics", "--config", json.dumps(config), "--out", str(out)]
    return subprocess.Popen(
        [sys.executable, "-m", "ahriuwu_core.dynamics.launch", "--nproc", str(nproc), "--store-dir", str(out)]
        + ["--", *train],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        **popen,
    )


def test_two_launched_ranks_train_the_weights_of_one_process_on_the_global_batch(tmp_path):
    """2 ranks x batch 2 through the default launcher end with the weights of 1 process x batch 4."""
    from tests.test_dynamics_train import _assert_matches_one_process, cli_config, make_stores

    stores = make_stores(tmp_path, n=2)
    out = tmp_path / "launched"
    out.mkdir()
    cfg = cli_config(stores, steps=4, ckpt_every=2)  # batch 2 per rank; steps 2 and 4 are long batches
    proc = _launcher(2, cfg, out)
    said = proc.communicate(timeout=180)[0].decode()
    assert proc.returncode == 0, said[-3000:]
    assert json.loads((out / "result.json").read_text())["world_size"] == 2
    _assert_matches_one_process(out, cfg, stores, tmp_path / "one")


def test_sigterm_to_the_launcher_reaches_its_ranks_which_checkpoint_and_stop(tmp_path):
    """SIGTERM to the launcher alone (not its process group): both ranks stop at the next checkpoint boundary
    with last.pt written and no final model, and the launcher exits 0 once they have, its rendezvous file gone."""
    from ahriuwu_core.training.checkpoint import read_checkpoint
    from tests._trainers import running, wait_for_step
    from tests.test_dynamics_train import cli_config, make_stores

    stores = make_stores(tmp_path, n=2)
    out = tmp_path / "launched"
    out.mkdir()
    proc = _launcher(2, cli_config(stores, steps=400, ckpt_every=7), out, start_new_session=True)
    try:
        wait_for_step(out, 3, proc)
        ranks = [pid for pid in _tree(proc.pid) if pid != proc.pid]
        assert len(ranks) >= 2, ranks
        proc.send_signal(signal.SIGTERM)
        said = proc.communicate(timeout=60)[0].decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, said[-3000:]
    assert not any(running(pid) for pid in ranks)
    result = json.loads((out / "result.json").read_text())
    assert result["world_size"] == 2 and result["ranks_in_sync"] and not result["completed"], result
    assert result["stopped_by"] == "boundary" and result["steps"] < 400, result
    assert read_checkpoint(out / "last.pt")["step"] == result["steps"] and result["steps"] % 7 == 0
    assert not (out / "dynamics.pt").exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".rendezvous")]
