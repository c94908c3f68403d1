"""N data-parallel ranks on this machine, without torchrun, that nothing off the machine can reach.

    python -m ahriuwu_core.dynamics.launch --nproc N --store-dir DIR -- python -m pipeline.dynamics_pipes --spec S

torchrun's rendezvous and worker stores (TCPStore) listen on every interface whatever address they are given.
Here the ranks meet through a FileStore in DIR instead (`AHRIUWU_DIST_INIT`, read by `distributed.distributed`),
and gloo and NCCL bind their own sockets to the loopback interface (GLOO_SOCKET_IFNAME, NCCL_SOCKET_IFNAME = lo).

Like torchrun, it sets RANK, LOCAL_RANK, WORLD_SIZE and LOCAL_WORLD_SIZE, forwards SIGTERM and SIGUSR1 to the
ranks, and stops the others when one fails. When its own parent dies it exits, so each rank's ParentWatch stops
that rank.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time

from ..data.files import temp_path
from ..training.run_control import ParentWatch

LOOPBACK = {"GLOO_SOCKET_IFNAME": "lo", "NCCL_SOCKET_IFNAME": "lo"}


def launch(nproc: int, command: list[str], store_dir, grace_s: float = 30.0, log=print) -> int:
    """Run `command` as ranks 0..nproc-1; return 0 when all succeed, else the first failing rank's status."""
    store = temp_path(os.path.join(store_dir, "rendezvous"))  # a dead launcher's is swept like any temp
    env = {
        **os.environ,
        **LOOPBACK,
        "AHRIUWU_DIST_INIT": f"file://{store}",
        "WORLD_SIZE": str(nproc),
        "LOCAL_WORLD_SIZE": str(nproc),
    }
    ranks = [subprocess.Popen(command, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(nproc)]

    def forward(signum, frame):
        for p in ranks:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        with ParentWatch(lambda: os._exit(1), grace_s=grace_s, log=log):
            failed = None
            while failed is None and any(p.poll() is None for p in ranks):
                failed = next((p for p in ranks if p.poll() not in (None, 0)), None)
                time.sleep(0.2)
            if failed is not None:  # the others would wait for it in a collective until gloo's timeout
                log(f"rank {ranks.index(failed)} exited with status {failed.returncode}: stopping the others")
                _stop(ranks, grace_s)
                return failed.returncode
            return next((p.returncode for p in ranks if p.returncode), 0)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _stop(ranks, 0)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(store)


def _stop(ranks, grace_s: float) -> None:
    for p in ranks:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace_s
    for p in ranks:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nproc", type=int, required=True, help="ranks to start (one per GPU)")
    ap.add_argument("--store-dir", required=True, help="a folder for the ranks' rendezvous file")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command every rank runs")
    args = ap.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.nproc < 1 or not command:
        ap.error("give --nproc >= 1 and, after --, the command the ranks run")
    return launch(args.nproc, command, args.store_dir)


if __name__ == "__main__":
    sys.exit(main())
