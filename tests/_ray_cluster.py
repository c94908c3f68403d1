"""A real multi-node Ray cluster on loopback addresses: a head node that runs nothing (0 CPUs) and worker nodes of 1
CPU each, every node a `ray start --block` process group of its own, so a test can kill one node and stop them all.

Each node has its own address in 127.0.0.0/8 (head 127.0.0.2, workers .3, .4, ...): Ray replaces 127.0.0.1 itself
with the machine's network address (a multi-node cluster must be reachable), while every 127.x address is loopback,
reachable from this machine only. The job server (dashboard) listens on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

# The script a platform engineer starts nodes with: the test cluster is started the same way.
NODE = str(Path(__file__).resolve().parents[1] / "deploy" / "ray-cluster.sh")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackCluster:
    def __init__(self, logs: Path, workers: dict[str, float] | None = None, env: dict | None = None):
        self.logs, self.env = Path(logs), {**os.environ, **(env or {}), "RAY_USAGE_STATS_ENABLED": "0"}
        # A step's job runs `dagster api execute_step`: the nodes find this environment's commands first, as in
        # the image (deploy/Dockerfile).
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"
        self.worker_cpus = workers or {"node_a": 1, "node_b": 1}
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        self.nodes: dict[str, subprocess.Popen] = {}
        self.ips = {"head": "127.0.0.2", **{name: f"127.0.0.{3 + i}" for i, name in enumerate(self.worker_cpus)}}
        self.ips = {name: "127.0.0.1" for name in self.ips}
        self.logs.mkdir(parents=True, exist_ok=True)

    @property
    def address(self) -> str:
        """The bootstrap (GCS) address, as `ray.init(address=...)` and `ray start --address` take it."""
        return f"{self.ips['head']}:{self.gcs_port}"

    @property
    def jobs_address(self) -> str:
        """The job server (dashboard), where `ray job submit` and dagster-ray's executor submit."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _node_args(self, name: str) -> list[str]:
        # Every node on this host needs its own agent ports (fixed defaults would collide).
        ports = {
            "--dashboard-agent-listen-port": free_port(),
            "--dashboard-agent-grpc-port": free_port(),
            "--runtime-env-agent-port": free_port(),
            "--metrics-export-port": free_port(),
        }
        return ["--node-ip-address", self.ips[name], *(str(x) for kv in ports.items() for x in kv)]

    def _start(self, name: str, args: list[str]) -> None:
        with open(self.logs / f"{name}.log", "w") as out:
            self.nodes[name] = subprocess.Popen(
                [NODE, *args, *self._node_args(name)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start(self, timeout_s: float = 120) -> LoopbackCluster:
        self.env.update(
            RAY_PORT=str(self.gcs_port),
            DASHBOARD_HOST="127.0.0.1",
            DASHBOARD_PORT=str(self.dashboard_port),
            CLIENT_PORT=str(free_port()),
        )
        self._start("head", ["head", "--num-cpus=0"])
        self._wait(lambda alive: "head" in alive, timeout_s)
        for name in self.worker_cpus:
            self.start_worker(name, timeout_s)
        return self

    def start_worker(self, name: str, timeout_s: float = 120) -> None:
        """A worker node with `worker_cpus[name]` CPUs and one unit of the custom resource `name`, so a task or job
        can be pinned to it."""
        resources = json.dumps({name: 1})
        self._start(name, ["worker", "127.0.0.1", f"--num-cpus={self.worker_cpus[name]}", f"--resources={resources}"])
        self._wait(lambda alive: name in alive, timeout_s)

    def alive_nodes(self) -> dict[str, str]:
        """{custom resource name or "head": node id} of the nodes the cluster sees alive."""
        out = subprocess.run(
            [sys.executable, "-c", _LIST_NODES, self.address], env=self.env, capture_output=True, text=True, timeout=60
        )
        if out.returncode != 0:
            return {}
        return json.loads(out.stdout.strip().splitlines()[-1])

    def _wait(self, ready, timeout_s: float) -> None:
        deadline = time.time() + timeout_s
        while True:
            for name, proc in self.nodes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"ray node {name} exited: {(self.logs / f'{name}.log').read_text()[-3000:]}")
            if ready(self.alive_nodes()):
                return
            if time.time() > deadline:
                raise TimeoutError(f"the loopback Ray cluster did not come up in {timeout_s:.0f}s ({self.logs})")
            time.sleep(0.5)

    def kill(self, name: str) -> None:
        """A lost machine: SIGKILL to every process of that node."""
        proc = self.nodes.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for name in [n for n in self.nodes if n != "head"] + ["head"]:
            proc = self.nodes.pop(name, None)
            if proc is None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            except ProcessLookupError:
                pass


_LIST_NODES = """
import json, sys
import ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
alive = {}
for node in ray.nodes():
    if node["Alive"]:
        names = [k for k in node["Resources"] if k.startswith("node_")]
        alive[names[0] if names else "head"] = node["NodeID"]
print(json.dumps(alive))
"""
