"""The Kubernetes route as code: the GPU pod that PipesK8sClient would create for the `dynamics` step (built by
dagster-k8s's own pod builder), and that pod's exact command run here through the real entry point with Dagster
Pipes, as the subprocess route runs it."""

import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from dagster import AssetExecutionContext, PipesSubprocessClient, asset, materialize

from pipeline.cluster import K8sLauncher, dynamics_command, launch_dynamics
from pipeline.resources import ComputeResource
from tests._instance import ROOT


def _pod(launcher: K8sLauncher, spec: Path, data_root: Path, nproc: int = 1) -> dict:
    """The pod body dagster-k8s submits for this spec (its own builder), as a plain dict."""
    from dagster_k8s.pipes import build_pod_body

    pod = build_pod_body(
        pod_name="dynamics-x",
        image=None,
        command=None,
        env_vars={"DAGSTER_PIPES_CONTEXT": "ctx", "DAGSTER_PIPES_MESSAGES": "msgs"},
        base_pod_meta=None,
        base_pod_spec=launcher.pod_spec(spec, data_root, nproc),
    )
    return pod.to_dict()


def test_the_dynamics_pod(tmp_path):
    data_root = tmp_path / "data"
    spec = data_root / "dynamics" / "runs" / "k" / "spec.json"
    launcher = K8sLauncher(image="registry.local/ahriuwu:1", volume_claim="ahriuwu-rwx")
    pod = _pod(launcher, spec, data_root)
    [container] = pod["spec"]["containers"]
    assert container["image"] == "registry.local/ahriuwu:1"
    assert container["command"] == ["python", "-m", "pipeline.dynamics_pipes", "--spec", str(spec)]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert [(m["name"], m["mount_path"]) for m in container["volume_mounts"]] == [("data", str(data_root))]
    assert pod["spec"]["volumes"][0]["persistent_volume_claim"]["claim_name"] == "ahriuwu-rwx"
    assert pod["spec"]["restart_policy"] == "Never"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["AHRIUWU_DATA_ROOT"] == str(data_root) and env["DAGSTER_PIPES_CONTEXT"] == "ctx"

    [ddp] = _pod(launcher, spec, data_root, nproc=8)["spec"]["containers"]
    # 8 ranks in the pod through the loopback-only launcher (its ranks meet through a file in the run folder)
    assert ddp["command"] == [
        "python",
        "-m",
        "ahriuwu_core.dynamics.launch",
        "--nproc=8",
        f"--store-dir={spec.parent}",
        "--",
        "python",
        "-m",
        "pipeline.dynamics_pipes",
        "--spec",
        str(spec),
    ]
    assert ddp["resources"]["limits"] == {"nvidia.com/gpu": "8"}
    assert _pod(launcher.model_copy(update={"gpus": 2}), spec, data_root, nproc=1)["spec"]["containers"][0][
        "resources"
    ]["limits"] == {"nvidia.com/gpu": "2"}


def test_bad_launcher_settings_name_the_variable(tmp_path):
    with pytest.raises(ValueError, match="AHRIUWU_K8S_IMAGE is empty"):
        K8sLauncher().pod_spec(tmp_path / "spec.json", tmp_path)
    with pytest.raises(ValueError, match="AHRIUWU_LAUNCHER='slurm': expected subprocess or k8s"):
        launch_dynamics(None, ComputeResource(launcher="slurm"), tmp_path / "spec.json", tmp_path, None, K8sLauncher())
    with pytest.raises(ValueError, match="AHRIUWU_NPROC_PER_NODE.*got 0"):
        dynamics_command(tmp_path / "spec.json", 0)


def test_the_launcher_is_configured_from_the_environment(monkeypatch):
    from pipeline.resources import resources_from_env

    for k, v in {
        "AHRIUWU_LAUNCHER": "k8s",
        "AHRIUWU_K8S_IMAGE": "img:2",
        "AHRIUWU_K8S_NAMESPACE": "ml",
        "AHRIUWU_K8S_VOLUME_CLAIM": "claim",
        "AHRIUWU_K8S_GPUS": "4",
    }.items():
        monkeypatch.setenv(k, v)
    resources = resources_from_env()
    assert resources["compute"].launcher == "k8s"
    k8s = resources["k8s"]
    assert (k8s.image, k8s.namespace, k8s.volume_claim, k8s.gpus) == ("img:2", "ml", "claim", 4)


def test_the_pods_command_runs_through_the_real_entry_point_with_pipes(tmp_path):
    from ahriuwu_core.data.manifest import file_sha256
    from ahriuwu_core.dynamics.data import write_latent_store
    from tests.test_dynamics_train import tiny_cfg

    data_root = tmp_path / "data"
    rng = np.random.default_rng(0)
    stores = [
        write_latent_store(data_root / f"v{i}.zarr", np.tanh(rng.normal(size=(24, 4, 3))).astype(np.float16))
        for i in range(2)
    ]
    out_dir = data_root / "run"
    out_dir.mkdir(parents=True)
    spec = out_dir / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "preset": "tiny",
                "config": dataclasses.asdict(tiny_cfg(steps=3)),
                "train_stores": [str(s) for s in stores],
                "out_dir": str(out_dir),
                "device": "auto",
            }
        )
    )
    [container] = _pod(K8sLauncher(image="img"), spec, data_root)["spec"]["containers"]
    command = container["command"]
    assert command[0] == "python"  # the image's python; here, this environment's
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
        **{e["name"]: e["value"] for e in container["env"] if e["name"].startswith("AHRIUWU_")},
    }

    @asset(key="dynamics")
    def in_a_pod(context: AssetExecutionContext, pipes: PipesSubprocessClient):
        return pipes.run(context=context, command=command, env=env).get_materialize_result()

    result = materialize([in_a_pod], resources={"pipes": PipesSubprocessClient(cwd=str(ROOT))})
    assert result.success
    [mat] = result.asset_materializations_for_node("dynamics")
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["preset"] == "tiny" and meta["world_size"] == 1 and meta["steps"] == 3
    assert mat.tags["dagster/data_version"] == file_sha256(out_dir / "dynamics.pt")
