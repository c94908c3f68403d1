"""Steps on a Ray cluster (`AHRIUWU_RAY_ADDRESS`): dagster-ray's executor submits every step as a Ray job, so
per-video steps spread over the nodes; GPU stages ask Ray for GPUs; the world model trains on Ray Train.

The address is the cluster's job server (`http://HEAD:8265`), a Ray Client address (`ray://HEAD:10001`), a bootstrap
address (`HEAD:6379`) or `auto` (a cluster this machine belongs to). Unset, steps run as subprocesses of the run on
this machine, as always. A step's Ray job gets the environment the project reads (DAGSTER_HOME, every AHRIUWU_
setting, PYTHONPATH), so every node must see the same paths: the data root and DAGSTER_HOME on shared storage, the
project installed at the same place (the image in deploy/).
"""

from __future__ import annotations

import json
import os

ADDRESS_ENV = "AHRIUWU_RAY_ADDRESS"
# GPUs each GPU stage's Ray job asks for (0 on a CPU cluster, where asking for one would wait forever).
STEP_GPUS_ENV = "AHRIUWU_RAY_STEP_GPUS"
PASSED_ENV = ("DAGSTER_HOME", "PYTHONPATH", "OMP_NUM_THREADS")


def ray_address() -> str:
    return os.environ.get(ADDRESS_ENV, "")


def step_env_vars() -> list[str]:
    """Names of the variables a step's Ray job inherits from the run (their values are read when the step is
    submitted)."""
    return sorted({*(k for k in PASSED_ENV if k in os.environ), *(k for k in os.environ if k.startswith("AHRIUWU_"))})


def step_gpus() -> float:
    return float(os.environ.get(STEP_GPUS_ENV, "1" if os.environ.get("AHRIUWU_DEVICE", "auto") != "cpu" else "0"))


def gpu_step_tags() -> dict[str, str]:
    """Op tags of a GPU stage: on a Ray cluster its job asks for `AHRIUWU_RAY_STEP_GPUS` GPUs, and Ray places it
    on a node that has them (the local lock-file lease is for one machine only)."""
    gpus = step_gpus()
    return {"dagster-ray/config": json.dumps({"num_gpus": gpus})} if ray_address() and gpus > 0 else {}


def ray_step_executor_config(address: str) -> dict:
    """dagster-ray's executor config on `address`: one Ray job per step, each asking for one CPU (GPU stages also
    ask for GPUs through their tags); a failed step is not retried by the executor."""
    return {
        "ray": {"address": address, "env_vars": step_env_vars(), "num_cpus": 1},
        "retries": {"disabled": {}},
        "tag_concurrency_limits": None,
    }
