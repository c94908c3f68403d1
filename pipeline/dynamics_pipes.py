"""The external process of the `dynamics` asset, launched through Dagster Pipes: alone, as local DDP ranks, or
under torchrun on a cluster (pipeline.cluster.dynamics_command).

    python -m pipeline.dynamics_pipes --spec SPEC.json                      # one process
    python -m ahriuwu_core.dynamics.launch --nproc N --store-dir DIR -- python -m pipeline.dynamics_pipes ...
    torchrun --nnodes M --nproc_per_node N ... -m pipeline.dynamics_pipes --spec SPEC.json  # a cluster

Every rank trains; rank 0 alone talks to Dagster (logs, then the materialization with its data version). A run
stopped before its model is usable (SIGTERM, SIGUSR1) fails with the step to resume from; once the launching
process is dead, nobody reads what it says, so it exits quietly (status 1) after checkpointing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path


class ParentGone(Exception):
    """Training stopped because the launching process died: nothing to report, nobody to report to."""


def main(argv=None) -> int:
    parent = os.getppid()
    try:
        return _main(argv)
    except (ParentGone, OSError):  # OSError: a broken pipe, or Pipes files a dying parent removed
        if os.getppid() == parent:
            raise
    # Output to a dead parent's pipe would only raise again (and Python's exit flush print a traceback).
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_WRONLY)
        for stream in (sys.stdout, sys.stderr):
            os.dup2(null, stream.fileno())
    return 1


def _main(argv) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--spec",
        required=True,
        help="JSON: config (a DynamicsTrainConfig), preset (its name, for the record), train_stores, out_dir, device",
    )
    spec = json.loads(Path(ap.parse_args(argv).spec).read_text())

    from ahriuwu_core.data.manifest import file_sha256
    from ahriuwu_core.dynamics.distributed import distributed
    from ahriuwu_core.dynamics.train import train_dynamics
    from ahriuwu_core.dynamics.train_config import DynamicsTrainConfig

    cfg = DynamicsTrainConfig.from_dict(spec["config"])
    stores = [Path(p) for p in spec["train_stores"]]
    if spec.get("ray"):
        return _train_on_ray(spec, cfg, stores)
    with distributed(spec["device"]) as device:
        if int(os.environ.get("RANK", "0")) != 0:
            result = train_dynamics(stores, cfg, spec["out_dir"], device=device, log=lambda _: None)
            _check_usable(result)
            return 0
        from dagster_pipes import open_dagster_pipes

        with open_dagster_pipes() as pipes:
            result = train_dynamics(stores, cfg, spec["out_dir"], device=device, log=pipes.log.info)
            _check_usable(result)  # raised here, the error reaches Dagster as the step's failure
            metadata = {k: v for k, v in result.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
            metadata["preset"] = spec["preset"]
            metadata["world_size"] = int(os.environ.get("WORLD_SIZE", "1"))
            pipes.report_asset_materialization(metadata=metadata, data_version=file_sha256(result["checkpoint"]))
    return 0


def _train_on_ray(spec: dict, cfg, stores) -> int:
    """Ray Train workers on the cluster train; this process relays rank 0's lines and reports the result."""
    from dagster_pipes import open_dagster_pipes

    from ahriuwu_core.data.manifest import file_sha256
    from ahriuwu_core.dynamics.ray_train import train_dynamics_on_ray

    ray = spec["ray"]
    with open_dagster_pipes() as pipes:
        result = train_dynamics_on_ray(
            stores,
            cfg,
            spec["out_dir"],
            address=_bootstrap_address(ray["address"]),
            workers=int(ray["workers"]),
            use_gpu=str(spec["device"]).startswith("cuda"),
            log=pipes.log.info,
        )
        _check_usable(result)
        metadata = {k: v for k, v in result.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
        metadata["preset"] = spec["preset"]
        metadata["ray_train_workers"] = int(ray["workers"])
        pipes.report_asset_materialization(metadata=metadata, data_version=file_sha256(result["checkpoint"]))
    return 0


def _bootstrap_address(address: str) -> str:
    """What `ray.init` takes: inside a Ray job the cluster's own address ("auto"); a job server URL is not one."""
    return "auto" if address.startswith(("http://", "https://")) or os.environ.get("RAY_ADDRESS") else address


def _check_usable(result: dict) -> None:
    if result["stopped_by"] == "parent_died":
        raise ParentGone()
    if result["checkpoint"] is None:
        raise RuntimeError(
            f"dynamics training stopped at step {result['steps']} before finishing "
            f"({result['stopped_by']}): no model to publish; rematerialize to resume from "
            f"{result['last_checkpoint']}"
        )


if __name__ == "__main__":
    sys.exit(main())
