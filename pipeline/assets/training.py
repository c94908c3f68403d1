"""Training: the tokenizer, each video's latents, and the world model (launched through Dagster Pipes)."""

import dataclasses
import json
import multiprocessing
from pathlib import Path

from dagster import (
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    PipesSubprocessClient,
    asset,
)

from ahriuwu_core.data import manifest as manifest_lib
from pipeline.assets.common import (
    AFTER_NEW_TOKENIZER,
    FOLLOW_INPUTS,
    OWNER,
    check_result,
    deployed_code_version,
    publish_if_passed,
    require_published,
    scalars,
    tensorboard_metadata,
    training_run_dir,
    video_partitions,
)
from pipeline.assets.ingest import dataset_manifest, frames
from pipeline.cluster import K8sLauncher, launch_dynamics
from pipeline.code_versions import code_version, run_tags
from pipeline.ray_cluster import gpu_step_tags
from pipeline.report import image_markdown, loss_curve_markdown
from pipeline.resources import ComputeResource, ProjectResource, StorageResource


@asset(
    deps=[dataset_manifest],
    group_name="training",
    code_version=deployed_code_version("tokenizer"),
    kinds={"pytorch"},
    tags={"compute": "gpu", "scope": "dataset"},
    owners=[OWNER],
    pool="gpu",
    op_tags=gpu_step_tags(),
    check_specs=[
        AssetCheckSpec(
            "not_collapsed",
            asset="tokenizer",
            blocking=True,
            description="distinct validation frames keep distinct latents and reconstructions",
        )
    ],
    description="A frame tokenizer (CNN or block-causal MAE transformer, tanh bottleneck) trained on the "
    "training split with MSE + 0.2 LPIPS; reports its reconstruction quality on the validation videos (the test "
    "videos when there are none).",
)
def tokenizer(
    context: AssetExecutionContext,
    storage: StorageResource,
    compute: ComputeResource,
    project: ProjectResource,
) -> MaterializeResult:
    from ahriuwu_core.tokenizer import train_tokenizer

    preset = project.preset_config()
    train_cfg = preset.tokenizer_config()
    manifest = manifest_lib.read_manifest(storage.path)
    stores = manifest_lib.stores_by_split(storage.path, manifest, "frames")
    run_dir = training_run_dir(
        storage,
        "tokenizer",
        manifest["version"],
        preset.name,
        train_cfg,
        code_version("tokenizer", project),
        log=context.log.info,
    )
    # Training runs in this step's process. Under the multiprocess executor its parent is the run worker: when
    # that dies (killed run), stop rather than hold the GPU for a run no one waits for. In-process (make demo)
    # the parent is a shell the demo may well outlive (nohup).
    with compute.step_device(storage, context.log.info) as device:
        # Its quality is judged on validation frames: the test videos stay unseen until the evaluation.
        result = train_tokenizer(
            stores["train"],
            stores["validation"] or stores["test"],
            train_cfg,
            run_dir,
            device=device,
            log=context.log.info,
            exit_with_parent=multiprocessing.parent_process() is not None,
        )
    if not result["completed"]:
        raise RuntimeError(
            f"tokenizer training stopped at step {result['steps']} before finishing "
            f"({result['stopped_by']}); rematerialize to resume from {result['checkpoint']}"
        )
    # Recorded: the run folder's copy (its path is this materialization's own; the published one is overwritten
    # by the next run), and the published path that readers load -- published only when the check passed.
    result["checkpoint"] = Path(result["checkpoint"])
    collapse = {k: v for k, v in result.items() if k.startswith("collapse_")}
    passed = bool(result["collapse_passed"])
    where, data_version = publish_if_passed(passed, result["checkpoint"], storage, "tokenizer", context)
    strip = result.pop("strip_png", None)
    metadata = {
        **scalars(result),
        **where,
        "preset": preset.name,
        "kind": train_cfg.kind,
        **tensorboard_metadata(project, storage, run_dir),
    }
    if strip:
        metadata["reconstructions"] = MetadataValue.md(image_markdown(strip, "ground truth (top) vs reconstruction"))
    if curve := loss_curve_markdown(run_dir / "train_log.jsonl"):
        metadata["loss_curve"] = MetadataValue.md(curve)
    return MaterializeResult(
        metadata=metadata,
        data_version=data_version,
        tags=run_tags("tokenizer", project),
        check_results=[check_result("not_collapsed", passed, {**collapse, **where}, AssetCheckSeverity.ERROR)],
    )


@asset(
    partitions_def=video_partitions,
    deps=[frames, tokenizer],
    group_name="training",
    code_version=deployed_code_version("latents"),
    kinds={"pytorch", "zarr"},
    tags={"compute": "gpu", "scope": "per_video"},
    owners=[OWNER],
    pool="gpu",
    op_tags=gpu_step_tags(),
    automation_condition=FOLLOW_INPUTS,  # waits for the tokenizer's not_collapsed check
    description="The video's frames encoded by the tokenizer into a float16 zarr latent store; its attributes "
    "name the tokenizer checkpoint that made it.",
)
def latents(
    context: AssetExecutionContext, storage: StorageResource, compute: ComputeResource, project: ProjectResource
) -> MaterializeResult:
    from ahriuwu_core.tokenizer import encode_video

    video_id = context.partition_key
    out = storage.layout.latents_store(video_id)
    require_published(context, storage, "tokenizer")
    with compute.step_device(storage, context.log.info) as device:
        stats = encode_video(
            storage.layout.frames_store(video_id),
            storage.layout.tokenizer_checkpoint,
            out,
            device=device,
            code_version=code_version("tokenizer", project),
        )
    return MaterializeResult(
        metadata={**scalars(stats), "path": MetadataValue.path(str(out)), "preset": project.preset_config().name},
        data_version=DataVersion(stats["content_hash"]),
        tags=run_tags("latents", project),
    )


@asset(
    deps=[latents, dataset_manifest, tokenizer],
    group_name="training",
    code_version=deployed_code_version("dynamics"),
    kinds={"pytorch"},
    tags={"compute": "gpu", "scope": "dataset"},
    owners=[OWNER],
    pool="gpu",
    op_tags=gpu_step_tags(),
    automation_condition=AFTER_NEW_TOKENIZER,
    check_specs=[
        AssetCheckSpec(
            "finite_loss",
            asset="dynamics",
            blocking=True,
            description="every logged training loss and the final loss are finite",
        ),
        AssetCheckSpec(
            "loss_improved",
            asset="dynamics",
            blocking=True,
            description="the mean of the last logged losses is below the first's by more than 2 "
            "standard errors (not judged with fewer than 3 logged losses at each end)",
        ),
        AssetCheckSpec(
            "action_alive",
            asset="dynamics",
            blocking=True,
            description="training moved the action embeddings, and the network's prediction (the "
            "action prior held fixed) changes when the actions change, on fixed training windows",
        ),
        AssetCheckSpec(
            "all_training_videos_used",
            asset="dynamics",
            description="every training video's latents are the current tokenizer's; a video whose re-encode "
            "failed or has not run is left out of training and named here",
        ),
    ],
    description="The world model: a space/time factorized transformer over latent tokens trained with flow "
    "matching (x-prediction), diffusion forcing and shortcut forcing, conditioned on actions.",
)
def dynamics(
    context: AssetExecutionContext,
    storage: StorageResource,
    compute: ComputeResource,
    project: ProjectResource,
    pipes_subprocess_client: PipesSubprocessClient,
    k8s: K8sLauncher,
):
    preset = project.preset_config()
    manifest = manifest_lib.read_manifest(storage.path)
    require_published(context, storage, "tokenizer")
    tokenizer_sha, train, left_out = _training_latents(storage, manifest["train"])
    for video_id, why in left_out.items():
        context.log.warning(f"training video {video_id} left out: {why}")
    out_dir = training_run_dir(
        storage,
        "dynamics",
        manifest["version"],
        tokenizer_sha,
        preset.name,
        preset.dynamics,
        [p.stem for p in train],
        code_version("dynamics", project),
        log=context.log.info,
    )
    spec = out_dir / "spec.json"
    remote = compute.launcher == "k8s"
    with compute.step_device(storage, context.log.info, distributed=compute.nproc_per_node > 1) as device:
        # The resolved config travels whole: the external process never looks a preset up again. A pod picks
        # its own GPUs, so it gets the configured device rather than one of this machine's.
        spec.write_text(
            json.dumps(
                {
                    "preset": preset.name,
                    "config": dataclasses.asdict(preset.dynamics),
                    "train_stores": [str(p) for p in train],
                    "out_dir": str(out_dir),
                    "device": compute.device if remote else device,
                    **(
                        {"ray": {"address": compute.ray_address, "workers": compute.ray_train_workers}}
                        if compute.launcher == "ray"
                        else {}
                    ),
                },
                indent=1,
            )
        )
        result = launch_dynamics(
            context, compute, spec, storage.path, pipes_subprocess_client, k8s
        ).get_materialize_result()
        checkpoint = out_dir / "dynamics.pt"
        checks = _dynamics_checks(checkpoint, out_dir, train, device)
    where, data_version = publish_if_passed(
        all(passed for passed, _ in checks.values()), checkpoint, storage, "dynamics", context
    )
    curve = loss_curve_markdown(out_dir / "train_log.jsonl")
    return MaterializeResult(
        metadata={
            **(result.metadata or {}),
            **where,
            **({"loss_curve": MetadataValue.md(curve)} if curve else {}),
            **tensorboard_metadata(project, storage, out_dir),
            "manifest_version": manifest["version"],
            "tokenizer_sha256": tokenizer_sha,
            "train_videos": len(train),
            "left_out_videos": ", ".join(f"{v} ({why})" for v, why in left_out.items()) or "none",
        },
        data_version=data_version,
        tags=run_tags("dynamics", project),
        check_results=[
            *(
                check_result(name, passed, {**details, **where}, AssetCheckSeverity.ERROR)
                for name, (passed, details) in checks.items()
            ),
            check_result("all_training_videos_used", not left_out, {"left_out": left_out or "none"}),
        ],
    )


def _training_latents(storage: StorageResource, train_videos: list) -> tuple[str, list, dict]:
    """(the current tokenizer's sha256, the training latent stores it encoded, the videos left out and why). The
    world model never mixes tokenizers, and it is decoded with the current one: a video whose latents are missing
    or another tokenizer's (its re-encode failed, or has not run) is left out, named, rather than stall training;
    none left is a clear error."""
    from ahriuwu_core.data import models
    from ahriuwu_core.tokenizer.encode import encoded_with

    path, sha = models.current(storage.layout, "tokenizer")
    train, left_out = encoded_with([storage.layout.latents_store(v) for v in train_videos], sha)
    if not train:
        raise ValueError(
            f"no training video has latents from the current tokenizer {sha[:16]} ({path}): "
            + "; ".join(f"{v}: {why}" for v, why in left_out.items())
            + ". Materialize `latents` first."
        )
    return sha, train, left_out


def _dynamics_checks(checkpoint: Path, out_dir: Path, train_stores: list, device: str) -> dict:
    """The dynamics asset's blocking checks on its run folder: name -> (passed, metadata)."""
    from ahriuwu_core.dynamics.checks import check_action_alive, check_finite_loss, check_loss_improved, logged_losses
    from ahriuwu_core.dynamics.load import load_dynamics

    losses = logged_losses(out_dir / "train_log.jsonl")
    trained = json.loads((out_dir / "result.json").read_text())
    model, train_cfg = load_dynamics(checkpoint, device)
    return {
        "finite_loss": check_finite_loss(losses, trained.get("loss_last")),
        "loss_improved": check_loss_improved(losses),
        "action_alive": check_action_alive(model, train_stores, train_seed=train_cfg.seed),
    }
