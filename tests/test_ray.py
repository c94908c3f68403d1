"""The project on a real Ray cluster: a head node and two worker nodes of one CPU each on loopback addresses
(tests/_ray_cluster.py), started once for this file. Every Ray driver runs in a subprocess of its own, so a node
loss can only end that process, never the test run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus

from tests._instance import scratch_project
from tests._ray_cluster import LoopbackCluster
from tests.test_dynamics_train import _assert_matches_one_process, cli_config, make_stores

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    started = LoopbackCluster(tmp_path_factory.mktemp("ray_logs"), env=env).start()
    yield started
    started.stop()


TRAIN_ON_RAY = """
import json, sys
from ahriuwu_core.cli.train_dynamics import config_from_json
from ahriuwu_core.dynamics.ray_train import train_dynamics_on_ray
address, config, out, workers = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4])
cfg, stores, _ = config_from_json(config)
result = train_dynamics_on_ray(stores, cfg, out, address=address, workers=workers, log=lambda s: print(s, flush=True))
print("RESULT " + json.dumps({k: result[k] for k in ("steps", "world_size", "resumed_from_step", "completed")}))
"""


def _train_on_ray(cluster, config: dict, out: Path, workers: int = 2, **popen) -> subprocess.Popen:
    env = {**cluster.env, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-c", TRAIN_ON_RAY, cluster.address, json.dumps(config), str(out), str(workers)]
    return subprocess.Popen(args, cwd=ROOT, env=env, text=True, start_new_session=True, **popen)


def _result(output: str) -> dict:
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    assert lines, output[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


def test_two_ray_train_workers_train_what_one_process_trains_with_the_doubled_batch(cluster, tmp_path):
    """TorchTrainer with 2 workers (one per worker node) x batch 2 against one process x batch 4: the same
    weights within float tolerance, the same logged losses, and rank 0's lines relayed to the driver."""
    stores = make_stores(tmp_path, n=2)
    config = cli_config(stores, steps=4, ckpt_every=2)
    proc = _train_on_ray(cluster, config, tmp_path / "ray", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output[-3000:]
    assert _result(output)["world_size"] == 2
    assert "step 4/4" in output  # rank 0's progress lines, through the Ray queue
    _assert_matches_one_process(tmp_path / "ray", config, stores, tmp_path / "one")


def _frames_nodes(cluster) -> set[str]:
    """The nodes whose job ran a `frames` step (dagster-ray labels each step's Ray job with its op)."""
    from ray.job_submission import JobSubmissionClient

    jobs = JobSubmissionClient(cluster.jobs_address).list_jobs()
    return {j.driver_node_id for j in jobs if (j.metadata or {}).get("dagster/op") == "frames"}


def _ui_state(instance: DagsterInstance) -> dict:
    """What the UI shows of a whole-graph materialization: whether every run succeeded, each materialized (asset,
    partition) and each check result. (On the cluster make demo starts fewer runs: a run holds a video's fetch and
    frames, say, where one machine runs a stage per run.)"""
    runs = instance.get_runs()
    materialized, checks = set(), {}
    for run in runs:
        for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
            mat = entry.dagster_event.step_materialization_data.materialization
            materialized.add((mat.asset_key.to_user_string(), mat.partition))
        for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
            evaluation = entry.dagster_event.event_specific_data
            key = (evaluation.asset_key.to_user_string(), evaluation.check_name, run.tags.get("dagster/partition"))
            checks[key] = evaluation.passed
    return {
        "all_succeeded": all(r.status == DagsterRunStatus.SUCCESS for r in runs),
        "materialized": materialized,
        "checks": checks,
    }


def test_the_tiny_demo_materializes_through_the_ray_executor_as_on_one_machine(cluster, tmp_path, monkeypatch):
    """`make demo` with AHRIUWU_RAY_ADDRESS: every step is a Ray job (per-video steps at once, spread over both
    worker nodes) and the world model trains on Ray Train; the instance then holds what a run on one machine
    leaves: the same runs, materializations and check results."""
    demo_source = tmp_path / "demo_source"
    from ahriuwu_core.demo.video import write_demo_videos
    from ahriuwu_core.presets import get_preset

    write_demo_videos(demo_source, get_preset("tiny").demo)
    states = {}
    for where in ("one_machine", "ray"):
        project = tmp_path / where
        with pytest.MonkeyPatch.context() as mp:
            _, data_root = scratch_project(project, demo_source, mp)
            mp.setenv("AHRIUWU_SOURCE", "demo")
            shutil.copytree(demo_source, data_root / "sources" / "demo")
            env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
            if where == "ray":
                env["AHRIUWU_RAY_ADDRESS"] = cluster.jobs_address
            start = time.time()
            proc = subprocess.run(
                [sys.executable, "-m", "pipeline.demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
            )
            print(f"{where}: make demo in {time.time() - start:.0f}s")
            assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
            instance = DagsterInstance.get()
            states[where] = _ui_state(instance)
            if where == "ray":
                assert "(on the Ray cluster)" in proc.stdout
                [dynamics] = instance.fetch_materializations(AssetKey("dynamics"), limit=1).records
                assert dynamics.asset_materialization.metadata["ray_train_workers"].value == 1
            instance.dispose()
    nodes = _frames_nodes(cluster)
    assert len(nodes) == 2, f"the 3 videos' frames steps ran on {nodes}"
    ray, local = states["ray"], states["one_machine"]
    differ = {k: (ray["checks"].get(k), local["checks"].get(k)) for k in {*ray["checks"], *local["checks"]}}
    assert ray == local, {k: v for k, v in differ.items() if v[0] != v[1]}
    assert ray["all_succeeded"] and len(ray["materialized"]) == 13 and len(ray["checks"]) >= 15


def test_a_lost_worker_node_fails_training_clearly_and_the_rerun_resumes(cluster, tmp_path):
    """SIGKILL to every process of one worker node while 2 Ray Train workers train: the fit fails, within a
    bound, naming the lost worker; with the node back, training again into the same run folder resumes from the
    last checkpoint on the shared data root and finishes."""
    stores = make_stores(tmp_path, n=2)
    config = cli_config(stores, steps=400, ckpt_every=2)
    out = tmp_path / "run"
    log = tmp_path / "driver.log"
    with open(log, "w") as sink:
        proc = _train_on_ray(cluster, config, out, stdout=sink, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 240
            while "step 6/400" not in log.read_text():
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.time() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            cluster.kill("node_b")
            killed = time.time()
            code = proc.wait(timeout=300)  # never a hang: a bound on how long a lost node may take to surface
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait()
    text = log.read_text()
    print(f"the fit failed {time.time() - killed:.0f}s after the node was lost")
    assert code != 0 and "RESULT" not in text
    assert "Training failed" in text or "died" in text.lower(), text[-3000:]
    assert (out / "last.pt").exists()

    logged = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    cluster.start_worker("node_b")
    config["steps"] = logged[-1] + 4
    proc = _train_on_ray(cluster, config, out, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output[-3000:]
    result = _result(output)
    # At most one checkpoint interval (2 steps) is trained again.
    assert result["completed"] and result["steps"] == config["steps"], result
    assert logged[-1] - 2 <= result["resumed_from_step"] <= logged[-1], (logged[-1], result)


GPU_TAGS = """
import json, sys
from pipeline.definitions import defs
graph = defs.resolve_asset_graph()
out = {}
for key in graph.get_all_asset_keys():
    op_tags = defs.get_assets_def(key).node_def.tags
    ray_config = json.loads(op_tags.get("dagster-ray/config", "{}"))
    pools = sorted(graph.get(key).pools or [])
    out[key.to_user_string()] = [ray_config.get("num_gpus"), pools[0] if pools else None]
print(json.dumps({"executor": defs.executor.name, "assets": out}))
"""


@pytest.mark.parametrize("device, gpus", [("auto", 1.0), ("cpu", None)])
def test_on_a_ray_cluster_gpu_stages_ask_ray_for_gpus_and_take_no_local_lease(tmp_path, monkeypatch, device, gpus):
    """The code location on a Ray cluster: its executor is dagster-ray's, every stage in the `gpu` pool asks Ray
    for a GPU (none on a CPU cluster: asking would wait forever), the others ask for none; and a GPU step on the
    cluster takes the devices Ray gave its job, with no lock-file lease (that is for one machine)."""
    import torch

    from pipeline.resources import ComputeResource, StorageResource

    env = {**os.environ, "AHRIUWU_RAY_ADDRESS": "http://127.0.0.1:1", "AHRIUWU_DEVICE": device}
    proc = subprocess.run([sys.executable, "-c", GPU_TAGS], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.splitlines()[-1])
    assert found["executor"] == "ray"
    for asset, (num_gpus, pool) in found["assets"].items():
        assert num_gpus == (gpus if pool == "gpu" else None), (asset, num_gpus, pool)
    assert sum(pool == "gpu" for _, pool in found["assets"].values()) == 4

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    storage = StorageResource(root=str(tmp_path))
    with ComputeResource(device="auto", launcher="ray").step_device(storage) as device_on_ray:
        assert device_on_ray == "cuda"  # the job's own GPUs (Ray sets CUDA_VISIBLE_DEVICES)
    assert not (tmp_path / "locks").exists()
    with ComputeResource(device="auto").step_device(storage) as leased:
        assert leased == "cuda:0" and (tmp_path / "locks").exists()


def test_ray_scaling_bench_smoke():
    """bench/ray_scaling.py in its smoke mode (its own 1-node cluster): it runs and prints its figures."""
    proc = subprocess.run(
        [sys.executable, "bench/ray_scaling.py", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line and " " not in line)
    assert float(figures["frames_latents_videos_per_min_1node"]) > 0
    assert float(figures["ray_step_overhead_s"]) > -5  # a Ray job costs at least what a local step does, roughly
