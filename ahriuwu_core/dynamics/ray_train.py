"""World-model training on a Ray cluster: Ray Train's TorchTrainer runs `train_dynamics` in N workers.

Ray Train starts the workers where the cluster has room and joins them in one torch process group (gloo on CPU,
NCCL on GPU); the loop is the one a single process runs, so each worker trains its slice of the global batch with
the same per-example seeding, and N workers with batch B train what one process trains with batch N*B. Rank 0
writes the run folder, on storage every node mounts (its result.json is what this process returns); its log lines
come back here through a Ray queue. A worker lost with its node fails the fit after `max_failures` restarts; a later
fit on the same run folder resumes from its last.pt, as on one machine.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from pathlib import Path

from .train_config import DynamicsTrainConfig


def train_dynamics_on_ray(
    train_stores: list,
    cfg: DynamicsTrainConfig,
    out_dir,
    *,
    address: str,
    workers: int,
    use_gpu: bool = False,
    cpus_per_worker: float = 1,
    max_failures: int = 0,
    log: Callable[[str], None] = print,
) -> dict:
    """Train on `workers` Ray Train workers of the cluster at `address` (a bootstrap address, `ray://...` or
    `auto`); returns rank 0's metrics, as `train_dynamics` does."""
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.util.queue import Queue

    if workers < 1:
        raise ValueError(f"Ray Train workers must be at least 1, got {workers}")
    out_dir = Path(out_dir).resolve()
    if not ray.is_initialized():
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    lines = Queue()
    stores = [str(Path(s).resolve()) for s in train_stores]

    def worker_loop(config):
        import ray.train
        import ray.train.torch
        import torch

        from ahriuwu_core.dynamics.train import train_dynamics

        device = ray.train.torch.get_device()
        if device.type == "cpu":
            torch.set_num_threads(max(1, int(cpus_per_worker)))
        rank = ray.train.get_context().get_world_rank()
        train_dynamics(
            config["stores"],
            DynamicsTrainConfig.from_dict(config["cfg"]),
            config["out_dir"],
            device=str(device),
            log=(lambda s: lines.put(s)) if rank == 0 else (lambda s: None),
            exit_with_parent=False,  # Ray owns the workers' lifetimes
        )

    done = threading.Event()

    def relay():  # rank 0's lines, in order, while the fit runs and once it ends
        while not (done.is_set() and lines.empty()):
            try:
                log(lines.get(timeout=0.5))
            except Exception:  # queue.Empty, or the queue's actor gone at shutdown
                continue

    relay_thread = threading.Thread(target=relay, name="ray-train-log", daemon=True)
    relay_thread.start()
    trainer = TorchTrainer(
        worker_loop,
        train_loop_config={"stores": stores, "cfg": dataclasses.asdict(cfg), "out_dir": str(out_dir)},
        scaling_config=ScalingConfig(
            num_workers=workers, use_gpu=use_gpu, resources_per_worker={"CPU": cpus_per_worker}
        ),
        run_config=RunConfig(
            name=out_dir.name,
            storage_path=str(out_dir / "ray_train"),
            failure_config=FailureConfig(max_failures=max_failures),
        ),
    )
    try:
        trainer.fit()
    finally:
        done.set()
        relay_thread.join(timeout=30)
    return json.loads((out_dir / "result.json").read_text())  # rank 0's metrics, written by train_dynamics
