"""The dynamics asset's multi-rank launch: 2 CPU ranks train as one, and every socket any of its processes
listens on is bound to loopback (torchrun's stores bind every interface); a failing rank stops the others."""

from __future__ import annotations

import ipaddress
import json
import os
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
