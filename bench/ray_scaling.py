"""Steps on a Ray cluster: frames+latents throughput on 1 worker node against 2, and what a step costs through the
Ray executor against the multiprocess executor on this machine.

The cluster is the test suite's loopback one (deploy/ray-cluster.sh nodes of 1 CPU each on this machine): 2 nodes
share the same cores as 1, so expect no speed-up here; the figure says what the executor's per-video fan-out
costs or gains where nodes are real machines only in the sense that nothing serializes them.

    .venv/bin/python bench/ray_scaling.py             # 4 videos of 4 s, 3 overhead repeats
    .venv/bin/python bench/ray_scaling.py --smoke     # the suite's run: 1 video of 2 s, 1 node, 1 repeat

Last lines: `frames_latents_videos_per_min_<n>node=<x>`, `two_node_speedup=<x>` (not in --smoke), then
`ray_step_overhead_s=<x>` (a cheap step through the Ray executor minus the same step through the multiprocess
executor, both started with `dagster asset materialize`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _materialize_command(select: str, partition: str | None) -> list[str]:
    """`dagster asset materialize` of `select`, as a user starts it."""
    cmd = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "pipeline.definitions"]
    return cmd + ["--select", select, *(["--partition", partition] if partition else [])]


def _materialize(select: str, partition: str | None, env: dict) -> float:
    """Seconds for `dagster asset materialize` of `select`."""
    start = time.perf_counter()
    proc = subprocess.run(_materialize_command(select, partition), cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{select}[{partition}] failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="1 short video, 1 node, 1 repeat (the suite's run)")
    args = ap.parse_args()
    n_videos, seconds, node_counts, repeats = (1, 2, (1,), 1) if args.smoke else (4, 4, (1, 2), 3)

    from ahriuwu_core.testing import media
    from tests._ray_cluster import LoopbackCluster

    work = Path(tempfile.mkdtemp(prefix="ahriuwu-ray-"))
    source = work / "source"
    for i in range(n_videos):
        media.make_clip(source / f"clip_{i}.mp4", seconds=seconds, width=160, height=90, pattern="moving")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(work / "home"),
        "AHRIUWU_DATA_ROOT": str(work / "assets"),
        "AHRIUWU_PRESET": "tiny",
        "AHRIUWU_SOURCE": f"folder:{source}",
        "AHRIUWU_AUTOMATION": "off",
        "AHRIUWU_DEVICE": "cpu",
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
    }
    (work / "home").mkdir(parents=True)
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", work / "home" / "dagster.yaml")
    os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "AHRIUWU_DATA_ROOT", "AHRIUWU_PRESET", "AHRIUWU_SOURCE")})

    # What the steps read: the videos, the manifest and a tokenizer, made once on this machine.
    from dagster import DagsterInstance

    from pipeline.demo import register_source
    from pipeline.resources import resources_from_env

    with DagsterInstance.get() as instance:
        ids = register_source(instance, resources_from_env(), log=lambda s: None)
    for vid in ids:
        _materialize("videos,frames", vid, env)
    _materialize("dataset_manifest,tokenizer", None, env)
    local_step = [_materialize("dataset_manifest", None, env) for _ in range(repeats)]

    rates, ray_step = {}, []
    for nodes in node_counts:
        workers = {f"node_{chr(97 + i)}": 1 for i in range(nodes)}
        cluster = LoopbackCluster(work / f"ray_{nodes}", workers=workers, env={"PYTHONPATH": str(ROOT)}).start()
        try:
            ray_env = {**env, "AHRIUWU_RAY_ADDRESS": cluster.jobs_address}
            start = time.perf_counter()
            # One run per video (its frames then latents), all at once, as make demo starts runs on a cluster.
            procs = [
                subprocess.Popen(
                    _materialize_command("frames,latents", vid),
                    cwd=ROOT,
                    env=ray_env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for vid in ids
            ]
            if any(p.wait() != 0 for p in procs):
                raise RuntimeError(f"frames+latents on {nodes} node(s) failed")
            elapsed = time.perf_counter() - start
            rates[nodes] = n_videos / elapsed * 60
            print(f"{nodes} node(s): {n_videos} videos' frames+latents in {elapsed:.1f}s")
            if nodes == node_counts[0]:
                ray_step = [_materialize("dataset_manifest", None, ray_env) for _ in range(repeats)]
        finally:
            cluster.stop()
    shutil.rmtree(work, ignore_errors=True)
    print(
        f"one step (dataset_manifest) started with the CLI: {statistics.median(local_step):.1f}s on this machine, "
        f"{statistics.median(ray_step):.1f}s through the Ray executor (median of {repeats})"
    )
    for nodes, rate in rates.items():
        print(f"frames_latents_videos_per_min_{nodes}node={rate:.2f}")
    if len(rates) == 2:
        print(f"two_node_speedup={rates[2] / rates[1]:.2f}")
    print(f"ray_step_overhead_s={statistics.median(ray_step) - statistics.median(local_step):.1f}")


if __name__ == "__main__":
    main()
