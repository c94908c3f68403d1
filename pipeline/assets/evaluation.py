"""Evaluation: rollouts of the published tokenizer and world model on the test videos (the score and the checks)
and the validation videos (shown beside them), scored against baselines."""

import time

from dagster import (
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)

from ahriuwu_core.data import manifest as manifest_lib
from ahriuwu_core.play.server import DEFAULT_PORT as PLAY_PORT
from pipeline.assets.common import (
    AFTER_NEW_WORLD_MODEL,
    OWNER,
    check_result,
    deployed_code_version,
    require_published,
    scalars,
)
from pipeline.assets.ingest import dataset_manifest
from pipeline.assets.training import dynamics, tokenizer
from pipeline.code_versions import STAGE_MODULES, code_version, run_tags
from pipeline.ray_cluster import gpu_step_tags
from pipeline.report import image_markdown, metrics_table, metrics_table_markdown
from pipeline.resources import PROJECT_ROOT, ComputeResource, ProjectResource, StorageResource


class EvaluationConfig(Config):
    """Which models to score: the current ones (empty), or a past one by its `model_sha256` (8 or more leading
    characters, from a tokenizer or dynamics materialization's metadata) or by its path."""

    tokenizer_model: str = ""
    dynamics_model: str = ""


@asset(
    deps=[dynamics, tokenizer, dataset_manifest],
    group_name="evaluation",
    code_version=deployed_code_version("evaluation"),
    kinds={"pytorch"},
    tags={"compute": "gpu", "scope": "dataset"},
    owners=[OWNER],
    pool="gpu",
    op_tags=gpu_step_tags(),
    automation_condition=AFTER_NEW_WORLD_MODEL,
    check_specs=[
        AssetCheckSpec(
            "beats_persistence_h1",
            asset="evaluation",
            description="on the test videos, the 95% interval (videos, then clips) of the model's PSNR "
            "margin over copy-last-frame at h=1 is above 0",
        ),
        AssetCheckSpec(
            "few_steps_close",
            asset="evaluation",
            description="on the test videos, K=4 within 0.5 dB of K=64 at every horizon, on the clips both score",
        ),
        AssetCheckSpec("no_nan", asset="evaluation", description="no NaN or inf in any metric"),
        AssetCheckSpec(
            "split_disjoint",
            asset="evaluation",
            blocking=True,
            description="no evaluated video is one the world model trained on (the training list its checkpoint "
            "records), and none is in two evaluated splits; a leak is refused before any rollout",
        ),
    ],
    description="Rollouts on the test videos (the score) and the validation videos (beside it): C context frames, "
    "then H frames predicted autoregressively; PSNR/SSIM/LPIPS per horizon against copy-last-frame, the tokenizer's "
    "ceiling and baselines that take no skill, action controllability, and pictures.",
)
def evaluation(
    context: AssetExecutionContext,
    config: EvaluationConfig,
    storage: StorageResource,
    compute: ComputeResource,
    project: ProjectResource,
) -> MaterializeResult:
    from ahriuwu_core.data import models
    from ahriuwu_core.data.split import check_split_disjoint
    from ahriuwu_core.eval.checks import check_beats_persistence, check_few_steps_close, check_no_nan
    from ahriuwu_core.eval.run import evaluate
    from ahriuwu_core.training.checkpoint import trained_videos

    preset = project.preset_config()
    manifest = manifest_lib.read_manifest(storage.path)
    stores = manifest_lib.stores_by_split(storage.path, manifest, "frames")
    for stage in ("tokenizer", "dynamics"):
        require_published(context, storage, stage)
    if not stores["test"]:  # a single-video dataset: say so, score nothing (never the training data)
        reason = (
            f"no test video: the dataset has {len(manifest['train'])} training video(s) and none held out, "
            "so there is nothing to evaluate on. Add videos (with 2 or more, 1 in 4 is a test video)."
        )
        context.log.warning(reason)
        return MaterializeResult(
            metadata={"status": reason, "test_videos": "none", "manifest_version": manifest["version"]},
            check_results=[
                check_result(name, False, {"reason": reason})
                for name in ("beats_persistence_h1", "few_steps_close", "no_nan", "split_disjoint")
            ],
        )
    # The model files themselves (content-addressed, never rewritten): what is scored is what is recorded.
    tokenizer_path, tokenizer_sha = models.find(storage.layout, "tokenizer", config.tokenizer_model)
    dynamics_path, dynamics_sha = models.find(storage.layout, "dynamics", config.dynamics_model)
    # Neither model may have seen a test video: each checkpoint's own training list (older checkpoints without
    # one: the manifest's training split).
    trained_by = {
        "world model": (dynamics_path, trained_videos(dynamics_path)),
        "tokenizer": (tokenizer_path, trained_videos(tokenizer_path)),
    }
    for what, (path, trained_on) in trained_by.items():
        leak = check_split_disjoint(manifest["train"] if trained_on is None else trained_on, manifest["test"])
        if not leak[0]:
            reason = f"not evaluated: the {what} {path.name} trained on test videos ({leak[1]})"
            context.log.error(reason)
            return MaterializeResult(
                metadata={"status": reason, "manifest_version": manifest["version"]},
                check_results=[
                    check_result("split_disjoint", False, {**leak[1], "model": what}, AssetCheckSeverity.ERROR),
                    *(check_result(n, False, {"reason": reason}) for n in ("beats_persistence_h1", "few_steps_close")),
                    check_result("no_nan", False, {"reason": reason}),
                ],
            )
    trained_on = trained_by["world model"][1]
    run_name = time.strftime("%Y%m%d-%H%M%S") + f"-{context.run.run_id[:8]}"
    trained = manifest["train"] if trained_on is None else trained_on
    lineage = {
        "manifest_version": manifest["version"],
        "test_videos": manifest["test"],
        "validation_videos": manifest["validation"],
        "train_videos": manifest["train"],
        "tokenizer_sha256": tokenizer_sha,
        "dynamics_sha256": dynamics_sha,
        "tokenizer_model": str(tokenizer_path),
        "dynamics_model": str(dynamics_path),
        "dynamics_train_videos": trained_on,
        "tokenizer_train_videos": trained_by["tokenizer"][1],
        "code_versions": {stage: code_version(stage, project) for stage in STAGE_MODULES},
        "run_id": context.run.run_id,
    }
    with compute.step_device(storage, context.log.info) as device:
        result = evaluate(
            tokenizer_path,
            dynamics_path,
            {"test": stores["test"], "validation": stores["validation"]},
            preset.evaluation,
            storage.layout.report_dir(run_name),
            lineage=lineage,
            device=device,
            log=context.log.info,
            estimate_motion=project.motion_estimator(),
            camera_track=project.camera_track(storage.layout),
        )
    metrics = result["metrics"]
    splits = metrics["splits"]
    metadata = {  # what a person reads first, then the scalars the Plots tab charts
        "preset": preset.name,
        "report": MetadataValue.path(str(result["report_path"])),
        "metrics_table": MetadataValue.md("\n\n".join(metrics_table_markdown(metrics, s) for s in splits)),
        **{f"{s}_psnr_table": metrics_table(metrics, s) for s in splits},
        "prediction_strip": MetadataValue.md(
            image_markdown(result["strip_png"], "a test video: ground truth (top) vs prediction")
        ),
        **{
            f"{s}_psnr_vs_horizon": MetadataValue.md(image_markdown(result["plot_pngs"][s], f"PSNR vs horizon, {s}"))
            for s in splits
        },
        **{f"{s}_videos": ", ".join(metrics[s]["videos"]) for s in splits},
        "manifest_version": manifest["version"],
        "tokenizer_model": MetadataValue.path(str(tokenizer_path)),
        "dynamics_model": MetadataValue.path(str(dynamics_path)),
        "tokenizer_sha256": tokenizer_sha,
        "dynamics_sha256": dynamics_sha,
        # the play page for this model pair: `make play` serves it (on the machine that holds the data root);
        # AHRIUWU_PLAY_URL says where users reach it when that is not this machine's loopback
        "play": MetadataValue.url(project.setting("play_url") or f"http://127.0.0.1:{PLAY_PORT}/"),
        "play_command": MetadataValue.text(  # these very models, even after newer ones are published
            ("make play" if storage.path == PROJECT_ROOT / "assets" else f"make play DATA_ROOT={storage.path}")
            + f' PLAY_ARGS="--tokenizer {tokenizer_sha[:16]} --dynamics {dynamics_sha[:16]}"'
        ),
        **scalars(result["flat"]),
    }
    evaluated = [v for s in splits for v in metrics[s]["videos"]]
    return MaterializeResult(
        metadata=metadata,
        data_version=DataVersion(manifest_lib.file_sha256(result["metrics_path"])),
        tags=run_tags("evaluation", project),
        check_results=[
            check_result("beats_persistence_h1", *check_beats_persistence(metrics, 1)),
            check_result("few_steps_close", *check_few_steps_close(metrics)),
            check_result("no_nan", *check_no_nan(metrics)),
            check_result(
                "split_disjoint",
                *check_split_disjoint(trained + manifest["missing"], evaluated),
                AssetCheckSeverity.ERROR,
            ),
        ],
    )
