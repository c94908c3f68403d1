"""The external process of the `dynamics` asset, launched through Dagster Pipes, alone or under torchrun.

    python -m pipeline.dynamics_pipes --spec SPEC.json                      # one process
    torchrun --nproc_per_node N -m pipeline.dynamics_pipes --spec SPEC.json  # DDP, here or on a cluster

Every rank trains; rank 0 alone talks to Dagster (logs, then the materialization with its data version).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spec", required=True, help="JSON: config (a DynamicsTrainConfig), preset (its name, for the "
                    "record), train_stores, out_dir, device")
    spec = json.loads(Path(ap.parse_args(argv).spec).read_text())

    from ahriuwu_core.dynamics.train import DynamicsTrainConfig, distributed, train_dynamics
    from ahriuwu_core.manifest import file_sha256

    cfg = DynamicsTrainConfig.from_dict(spec["config"])
    stores = [Path(p) for p in spec["train_stores"]]
    with distributed(spec["device"]) as device:
        if int(os.environ.get("RANK", "0")) != 0:
            train_dynamics(stores, cfg, spec["out_dir"], device=device, log=lambda _: None)
            return
        from dagster_pipes import open_dagster_pipes

        with open_dagster_pipes() as pipes:
            result = train_dynamics(stores, cfg, spec["out_dir"], device=device, log=pipes.log.info)
            metadata = {k: v for k, v in result.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
            metadata["preset"] = spec["preset"]
            metadata["world_size"] = int(os.environ.get("WORLD_SIZE", "1"))
            pipes.report_asset_materialization(metadata=metadata, data_version=file_sha256(result["checkpoint"]))


if __name__ == "__main__":
    main()
