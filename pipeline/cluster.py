"""Where the `dynamics` step's training process runs: a subprocess beside the Dagster step (the default), a GPU
pod on Kubernetes launched with Dagster Pipes (`AHRIUWU_LAUNCHER=k8s`, the `k8s` extra), or Ray Train workers on a
Ray cluster driven from that subprocess (`AHRIUWU_LAUNCHER=ray`, the default with AHRIUWU_RAY_ADDRESS). Either way
the process is `python -m pipeline.dynamics_pipes --spec SPEC` (N > 1 processes: under a launcher,
`dynamics_command`), and the asset reads the same materialization back.

A pod sees the data root through a ReadWriteMany volume mounted at the same path as on the Dagster side, so the
spec's absolute paths (latent stores, the run folder) mean the same files in both places.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dagster import ConfigurableResource


def dynamics_command(
    spec: Path, nproc_per_node: int = 1, python: str = "python", rdzv_endpoint: str = "", nnodes: int = 1
) -> list[str]:
    """The training process's command line: one trainer; N local DDP ranks through the loopback-only launcher
    (the ranks meet through a file in the run folder, the spec's folder); or, with a rendezvous endpoint,
    torchrun's c10d rendezvous there (it listens on every interface), which the other nodes join."""
    if nproc_per_node < 1:
        raise ValueError(f"nproc_per_node (AHRIUWU_NPROC_PER_NODE) must be at least 1, got {nproc_per_node}")
    spec = Path(spec)
    args = ["-m", "pipeline.dynamics_pipes", "--spec", str(spec)]
    if rdzv_endpoint:
        args = [
            "-m",
            "torch.distributed.run",
            f"--nnodes={nnodes}",
            f"--nproc_per_node={nproc_per_node}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={rdzv_endpoint}",
            f"--rdzv-id={spec.parent.name}",
            *args,
        ]
    elif nproc_per_node > 1:
        args = [
            "-m",
            "ahriuwu_core.dynamics.launch",
            f"--nproc={nproc_per_node}",
            f"--store-dir={spec.parent}",
            "--",
            python,
            *args,
        ]
    return [python, *args]


class K8sLauncher(ConfigurableResource):
    """The GPU pod of the `dynamics` step. image: one with this project installed (its `python` runs the entry
    point); volume_claim: the PersistentVolumeClaim (ReadWriteMany) holding the data root; gpus: the pod's
    `nvidia.com/gpu` limit (0: one per training process)."""

    image: str = ""
    namespace: str = "default"
    volume_claim: str = "ahriuwu-data"
    gpus: int = 0

    def pod_spec(self, spec: Path, data_root: Path, nproc_per_node: int = 1) -> dict:
        """The pod spec (Kubernetes' camelCase form, as `PipesK8sClient` takes it)."""
        if not self.image:
            raise ValueError("AHRIUWU_K8S_IMAGE is empty: the k8s launcher needs an image with the project installed")
        if not self.volume_claim:
            raise ValueError("AHRIUWU_K8S_VOLUME_CLAIM is empty: the pod needs the data root's volume claim")
        data_root = str(Path(data_root))
        gpus = self.gpus or nproc_per_node
        return {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "train",
                    "image": self.image,
                    "command": dynamics_command(spec, nproc_per_node),
                    "env": [{"name": "AHRIUWU_DATA_ROOT", "value": data_root}],
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                    "volumeMounts": [{"name": "data", "mountPath": data_root}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": self.volume_claim}}],
        }

    def run(self, context, spec: Path, data_root: Path, nproc_per_node: int = 1):
        """Launch the pod and stream its logs and materialization back (PipesK8sClient: in-cluster config when
        Dagster runs in the cluster, else the kubeconfig)."""
        from dagster_k8s import PipesK8sClient

        return PipesK8sClient().run(
            context=context, namespace=self.namespace, base_pod_spec=self.pod_spec(spec, data_root, nproc_per_node)
        )


def launch_dynamics(context, compute, spec: Path, data_root: Path, subprocess_client, k8s: K8sLauncher):
    """Run the training process where `compute.launcher` says (AHRIUWU_LAUNCHER): "subprocess", "k8s", or "ray"
    (the process drives Ray Train workers on the cluster, as its spec says)."""
    if compute.launcher == "ray":
        return subprocess_client.run(context=context, command=dynamics_command(spec, python=sys.executable))
    if compute.launcher == "subprocess":
        command = dynamics_command(spec, compute.nproc_per_node, sys.executable, compute.rdzv_endpoint, compute.nnodes)
        return subprocess_client.run(context=context, command=command)
    if compute.launcher == "k8s":
        return k8s.run(context, spec, data_root, compute.nproc_per_node)
    raise ValueError(f"AHRIUWU_LAUNCHER={compute.launcher!r}: expected subprocess or k8s")
