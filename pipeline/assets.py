"""The six stages as Dagster assets, plus the dataset manifest between the per-video stages and training.

Assets only wire: each calls one `ahriuwu_core` function and reports what it measured. Every asset returns a
content-derived data version, so staleness follows the data, and a `code_version` to bump when its logic changes.
"""

import dataclasses
import hashlib
import json
import multiprocessing
import time
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetSelection,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AutomationCondition,
    Config,
    DataVersion,
    DynamicPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    PipesSubprocessClient,
    asset,
)

from ahriuwu_core import catalog, manifest as manifest_lib
from ahriuwu_core.conventions import FETCHED_SIDECARS
from ahriuwu_core.files import copy_file
from ahriuwu_core.play.server import DEFAULT_PORT as PLAY_PORT
from pipeline.cluster import K8sLauncher, launch_dynamics
from pipeline.report import image_markdown, loss_curve_markdown, metrics_table, metrics_table_markdown
from pipeline.resources import PROJECT_ROOT, ComputeResource, ProjectResource, StorageResource

video_partitions = DynamicPartitionsDefinition(name="videos")
# Who answers for every stage (the UI's owner column and filters). Asset tags: `compute` (cpu or gpu, as its
# pool says) and `scope` (per_video: one partition per video; dataset: one over the whole dataset).
OWNER = "team:ml"

# Bump a stage's code version when its output for the same input changes; Dagster then marks it and its
# downstream stale. Kept here, one place, so the UI and the tests agree.
# frames 2: actions lead into their frame (conventions.py), time-step jitter recorded. dynamics 3: block packing,
# persistence prior, 2D space RoPE, action on latent tokens. dynamics 4: each example's window, corruption and
# noise drawn from (seed, step, example index), so N ranks train exactly what one process does on their union.
# evaluation 2: 16 clips per video, bootstrap intervals, persistence_motion and mean-readout series, per-frame
# encoding. frames 3, latents 2: every chunk written and zstd-checksummed (`checked_store`), so damage is an error.
CODE_VERSIONS = {
    "videos": "1",
    "frames": "3",
    "dataset_manifest": "1",
    "tokenizer": "2",
    "latents": "2",
    "dynamics": "4",
    "evaluation": "2",
}


# Automation. The new_videos sensor only adds partitions; these conditions request every per-video run, so each
# stage of a new video is requested once. None requests while a run for it is in flight, and a failed run is not
# retried until its input changes (a video's fetch: until materialized by hand).
# A fetch is requested once per partition that becomes missing (also those already there at the first evaluation,
# unlike on_missing()), then not again whether or not its run has been launched yet.
FETCH_NEW_VIDEO = (
    AutomationCondition.missing().newly_true().since(
        AutomationCondition.newly_requested() | AutomationCondition.newly_updated())
    & ~AutomationCondition.in_progress()
    & ~AutomationCondition.execution_failed()
).with_label("newly_missing_once")
# eager(): once per new partition or input update (since_last_handled), not while it or an input is in progress;
# and never past a failed blocking check upstream.
FOLLOW_INPUTS = (AutomationCondition.eager() & AutomationCondition.all_deps_blocking_checks_passed()).with_label(
    "eager_after_blocking_checks")

# Retraining (the `weekly_retrain` schedule requests the tokenizer, or you do): latents follow the new tokenizer
# through FOLLOW_INPUTS; the world model retrains once every video is re-encoded with it, and the evaluation
# follows the world model. New videos alone (new latents, a new manifest) retrain nothing.
_TOKENIZER_UPDATED = AutomationCondition.any_deps_match(AutomationCondition.newly_updated()).allow(
    AssetSelection.assets("tokenizer"))
# No latents partition left that has not been updated since the tokenizer was (all_deps_match would be satisfied by
# any one partition of a partitioned dep).
_REENCODED = ~AutomationCondition.any_deps_match(~AutomationCondition.newly_updated().since(_TOKENIZER_UPDATED)).allow(
    AssetSelection.assets("latents"))
AFTER_NEW_TOKENIZER = (
    _TOKENIZER_UPDATED.since(AutomationCondition.newly_requested() | AutomationCondition.newly_updated())
    & _REENCODED
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
    & AutomationCondition.all_deps_blocking_checks_passed()
).with_label("after_new_tokenizer_and_its_latents")
AFTER_NEW_WORLD_MODEL = (
    AutomationCondition.any_deps_match(AutomationCondition.newly_updated()).allow(AssetSelection.assets("dynamics"))
    .since(AutomationCondition.newly_requested() | AutomationCondition.newly_updated())
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
    & AutomationCondition.all_deps_blocking_checks_passed()
).with_label("after_new_world_model")


class VideosConfig(Config):
    """refetch: download again even when the video is already there (e.g. its source file changed)."""

    refetch: bool = False


@asset(
    partitions_def=video_partitions,
    group_name="ingest",
    code_version=CODE_VERSIONS["videos"],
    kinds={"yt-dlp"},
    tags={"compute": "cpu", "scope": "per_video"},
    owners=[OWNER],
    automation_condition=FETCH_NEW_VIDEO,
    description="One source video fetched with yt-dlp (YouTube, HTTP, file://) into videos/<id>/, with its "
    "raw info json, parsed metadata and, where the source has one, the actions sidecar.",
)
def videos(
    context: AssetExecutionContext, config: VideosConfig, storage: StorageResource, project: ProjectResource
) -> MaterializeResult:
    from ahriuwu_core.sources import fetch_video

    video_id = context.partition_key
    entry = catalog.catalog_entry(storage.path, video_id)
    start = time.perf_counter()
    info = fetch_video(entry, storage.layout.videos_dir, project.source_config(), log=context.log.info,
                       refetch=config.refetch)
    meta = {k: v for k, v in info.items() if isinstance(v, (int, float, str)) and v is not None and k != "url"}
    if entry.get("url"):  # the source page (or file://), clickable in the UI
        meta["url"] = MetadataValue.url(entry["url"])
    return MaterializeResult(
        metadata={**meta, "seconds": round(time.perf_counter() - start, 2)},
        data_version=DataVersion(info["sha256"]),
    )


@asset(
    partitions_def=video_partitions,
    deps=[videos],
    group_name="ingest",
    code_version=CODE_VERSIONS["frames"],
    kinds={"pyav", "zarr"},
    tags={"compute": "cpu", "scope": "per_video"},
    owners=[OWNER],
    automation_condition=FOLLOW_INPUTS,
    check_specs=[
        AssetCheckSpec("frame_count", asset="frames", description="frame count = floor(duration x 20) within 1"),
        AssetCheckSpec("not_black_or_frozen", asset="frames", description="the video is neither all black nor frozen"),
    ],
    description="The video decoded with PyAV, resampled to exactly 20 fps by timestamp, resized, stored as a "
    "uint8 zarr array (T, H, W, 3) with the 20 fps actions, a no-action mask and the HUD mask.",
)
def frames(context: AssetExecutionContext, storage: StorageResource, project: ProjectResource) -> MaterializeResult:
    from ahriuwu_core.frames import check_frame_count, check_not_black_or_frozen, extract_frames

    video_id = context.partition_key
    video_dir = storage.layout.video_dir(video_id)
    video_path = next((p for p in sorted(video_dir.glob("video.*")) if not p.name.endswith(".part")), None)
    if video_path is None:
        raise FileNotFoundError(f"no downloaded video for {video_id!r} in {video_dir}: materialize `videos` first")
    actions = next((video_dir / n for n in FETCHED_SIDECARS if (video_dir / n).exists()), None)
    preset = project.preset_config()
    stats = extract_frames(
        video_path,
        storage.layout.frames_store(video_id),
        preset.frames,
        actions_path=actions,
        video_id=video_id,
    )
    store = storage.layout.frames_store(video_id)
    return MaterializeResult(
        metadata={**_scalars(stats), "path": MetadataValue.path(str(store)), "preset": preset.name},
        data_version=DataVersion(stats["content_hash"]),
        check_results=[
            _check("frame_count", *check_frame_count(stats)),
            _check("not_black_or_frozen", *check_not_black_or_frozen(store)),
        ],
    )


@asset(
    deps=[frames],
    group_name="dataset",
    code_version=CODE_VERSIONS["dataset_manifest"],
    kinds={"json"},
    tags={"compute": "cpu", "scope": "dataset"},
    owners=[OWNER],
    # Re-listing is cheap, so the manifest follows every frames update (an event, which Dagster tracks at any
    # partition count); training downstream then goes stale through its data version, past Dagster's
    # 100-upstream-partition limit on staleness checks.
    automation_condition=(
        AutomationCondition.any_deps_updated().since_last_handled()
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
        & AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label("after_any_frames_update"),
    check_specs=[AssetCheckSpec("split_disjoint", asset="dataset_manifest", blocking=True,
                                description="no video is both in training and held out")],
    description="Every video with extracted frames, its content hash and its split (train / held out). Its data "
    "version hashes the per-video hashes in sorted order, so training goes stale exactly when a video changes, "
    "however many videos there are.",
)
def dataset_manifest(context: AssetExecutionContext, storage: StorageResource, project: ProjectResource) -> MaterializeResult:
    from ahriuwu_core.split import check_split_disjoint

    video_ids = context.instance.get_dynamic_partitions(video_partitions.name)
    preset = project.preset_config()
    manifest = manifest_lib.build_manifest(storage.path, video_ids, preset.split)
    split_ok, split_details = check_split_disjoint(manifest["train"], manifest["heldout"])
    if not split_ok:  # never publish a manifest whose split leaks: training would read it
        raise ValueError(f"dataset split leaks: {split_details}")
    path = manifest_lib.write_manifest(storage.path, manifest)
    for video_id in manifest["missing"]:
        context.log.warning(f"video {video_id!r} has no frames store yet; left out of the manifest")
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(path)),
            "preset": preset.name,
            "num_videos": len(manifest["videos"]),
            "num_train": len(manifest["train"]),
            "num_heldout": len(manifest["heldout"]),
            "num_frames": sum(v["num_frames"] for v in manifest["videos"]),
            "missing": ", ".join(manifest["missing"]) or "none",
            "split": MetadataValue.json({"train": manifest["train"], "heldout": manifest["heldout"]}),
            "action_space": MetadataValue.json(manifest["action_space"] or {"components": [], "num_classes": []}),
        },
        data_version=DataVersion(manifest["version"]),
        check_results=[_check("split_disjoint", split_ok, split_details, AssetCheckSeverity.ERROR)],
    )


@asset(
    deps=[dataset_manifest],
    group_name="training",
    code_version=CODE_VERSIONS["tokenizer"],
    kinds={"pytorch"},
    tags={"compute": "gpu", "scope": "dataset"},
    owners=[OWNER],
    pool="gpu",
    check_specs=[
        AssetCheckSpec("not_collapsed", asset="tokenizer", blocking=True,
                       description="distinct held-out frames keep distinct latents and reconstructions")
    ],
    description="A frame tokenizer (CNN or block-causal MAE transformer, tanh bottleneck) trained on the "
    "training split with MSE + 0.2 LPIPS; reports held-out reconstruction quality.",
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
    run_dir = _run_dir(storage, "tokenizer", manifest["version"], preset.name, train_cfg, CODE_VERSIONS["tokenizer"])
    # Training runs in this step's process. Under the multiprocess executor its parent is the run worker: when
    # that dies (killed run), stop rather than hold the GPU for a run no one waits for. In-process (make demo)
    # the parent is a shell the demo may well outlive (nohup).
    with compute.step_device(storage, context.log.info) as device:
        result = train_tokenizer(stores["train"], stores["heldout"], train_cfg, run_dir, device=device,
                                 log=context.log.info, exit_with_parent=multiprocessing.parent_process() is not None)
    if not result["completed"]:
        raise RuntimeError(f"tokenizer training stopped at step {result['steps']} before finishing "
                           f"({result['stopped_by']}); rematerialize to resume from {result['checkpoint']}")
    # Recorded: the run folder's copy (its path is this materialization's own; the published one is overwritten
    # by the next run), and the published path that readers load -- published only when the check passed.
    result["checkpoint"] = Path(result["checkpoint"])
    collapse = {k: v for k, v in result.items() if k.startswith("collapse_")}
    passed = bool(result["collapse_passed"])
    where = _publish_if_passed(passed, result["checkpoint"], storage.layout.tokenizer_checkpoint, context)
    strip = result.pop("strip_png", None)
    metadata = {**_scalars(result), **where, "preset": preset.name, "kind": train_cfg.kind}
    if strip:
        metadata["reconstructions"] = MetadataValue.md(image_markdown(strip, "ground truth (top) vs reconstruction"))
    if curve := loss_curve_markdown(run_dir / "train_log.jsonl"):
        metadata["loss_curve"] = MetadataValue.md(curve)
    return MaterializeResult(
        metadata=metadata,
        data_version=DataVersion(manifest_lib.file_sha256(result["checkpoint"])),
        check_results=[_check("not_collapsed", passed, {**collapse, **where}, AssetCheckSeverity.ERROR)],
    )


@asset(
    partitions_def=video_partitions,
    deps=[frames, tokenizer],
    group_name="training",
    code_version=CODE_VERSIONS["latents"],
    kinds={"pytorch", "zarr"},
    tags={"compute": "gpu", "scope": "per_video"},
    owners=[OWNER],
    pool="gpu",
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
    _require_published(context, storage, "tokenizer")
    with compute.step_device(storage, context.log.info) as device:
        stats = encode_video(
            storage.layout.frames_store(video_id),
            storage.layout.tokenizer_checkpoint,
            out,
            device=device,
            code_version=CODE_VERSIONS["tokenizer"],
        )
    return MaterializeResult(
        metadata={**_scalars(stats), "path": MetadataValue.path(str(out)), "preset": project.preset_config().name},
        data_version=DataVersion(stats["content_hash"]),
    )


@asset(
    deps=[latents, dataset_manifest, tokenizer],
    group_name="training",
    code_version=CODE_VERSIONS["dynamics"],
    kinds={"pytorch"},
    tags={"compute": "gpu", "scope": "dataset"},
    owners=[OWNER],
    pool="gpu",
    automation_condition=AFTER_NEW_TOKENIZER,
    check_specs=[
        AssetCheckSpec("finite_loss", asset="dynamics", blocking=True,
                       description="every logged training loss and the final loss are finite"),
        AssetCheckSpec("loss_improved", asset="dynamics", blocking=True,
                       description="the mean of the last logged losses is below the first's by more than 2 "
                       "standard errors (not judged with fewer than 3 logged losses at each end)"),
        AssetCheckSpec("action_alive", asset="dynamics", blocking=True,
                       description="the prediction changes when the actions change, on fixed training windows"),
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
    stores = manifest_lib.stores_by_split(storage.path, manifest, "latents")
    _require_published(context, storage, "tokenizer")
    tokenizer_sha = manifest_lib.file_sha256(storage.layout.tokenizer_checkpoint)
    out_dir = _run_dir(storage, "dynamics", manifest["version"], tokenizer_sha, preset.name, preset.dynamics,
                       CODE_VERSIONS["dynamics"])
    spec = out_dir / "spec.json"
    remote = compute.launcher == "k8s"
    with compute.step_device(storage, context.log.info, distributed=compute.nproc_per_node > 1) as device:
        # The resolved config travels whole: the external process never looks a preset up again. A pod picks
        # its own GPUs, so it gets the configured device rather than one of this machine's.
        spec.write_text(json.dumps({"preset": preset.name, "config": dataclasses.asdict(preset.dynamics),
                                    "train_stores": [str(p) for p in stores["train"]],
                                    "out_dir": str(out_dir), "device": compute.device if remote else device},
                                   indent=1))
        result = launch_dynamics(context, compute, spec, storage.path, pipes_subprocess_client,
                                 k8s).get_materialize_result()
        checkpoint = out_dir / "dynamics.pt"
        checks = _dynamics_checks(checkpoint, out_dir, stores["train"], device)
    where = _publish_if_passed(all(passed for passed, _ in checks.values()), checkpoint,
                               storage.layout.dynamics_checkpoint, context)
    curve = loss_curve_markdown(out_dir / "train_log.jsonl")
    return MaterializeResult(
        metadata={**(result.metadata or {}), **where, **({"loss_curve": MetadataValue.md(curve)} if curve else {}),
                  "manifest_version": manifest["version"]},
        data_version=result.data_version,
        check_results=[_check(name, passed, {**details, **where}, AssetCheckSeverity.ERROR)
                       for name, (passed, details) in checks.items()],
    )


def _dynamics_checks(checkpoint: Path, out_dir: Path, train_stores: list, device: str) -> dict:
    """The dynamics asset's blocking checks on its run folder: name -> (passed, metadata)."""
    from ahriuwu_core.dynamics.checks import check_action_alive, check_finite_loss, check_loss_improved, logged_losses
    from ahriuwu_core.dynamics.train import load_world_model

    losses = logged_losses(out_dir / "train_log.jsonl")
    trained = json.loads((out_dir / "result.json").read_text())
    return {
        "finite_loss": check_finite_loss(losses, trained.get("loss_last")),
        "loss_improved": check_loss_improved(losses),
        "action_alive": check_action_alive(load_world_model(checkpoint, device), train_stores),
    }


@asset(
    deps=[dynamics, tokenizer, dataset_manifest],
    group_name="evaluation",
    code_version=CODE_VERSIONS["evaluation"],
    kinds={"pytorch"},
    tags={"compute": "gpu", "scope": "dataset"},
    owners=[OWNER],
    pool="gpu",
    automation_condition=AFTER_NEW_WORLD_MODEL,
    check_specs=[
        AssetCheckSpec("beats_persistence_h1", asset="evaluation",
                       description="the 95% interval of the model's PSNR margin over copy-last-frame at h=1 is above 0"),
        AssetCheckSpec("few_steps_close", asset="evaluation", description="K=4 within 1 dB of K=64 (mean over horizons)"),
        AssetCheckSpec("no_nan", asset="evaluation", description="no NaN or inf in any metric"),
        AssetCheckSpec("split_disjoint", asset="evaluation", description="evaluated videos never reached training"),
    ],
    description="Held-out rollouts: C context frames, then H frames predicted autoregressively; PSNR/SSIM/LPIPS "
    "per horizon against copy-last-frame and the tokenizer's ceiling, action controllability, and pictures.",
)
def evaluation(
    context: AssetExecutionContext,
    storage: StorageResource,
    compute: ComputeResource,
    project: ProjectResource,
) -> MaterializeResult:
    from ahriuwu_core.eval.checks import check_beats_persistence, check_few_steps_close, check_no_nan
    from ahriuwu_core.eval.run import evaluate
    from ahriuwu_core.split import check_split_disjoint

    preset = project.preset_config()
    manifest = manifest_lib.read_manifest(storage.path)
    stores = manifest_lib.stores_by_split(storage.path, manifest, "frames")
    for stage in ("tokenizer", "dynamics"):
        _require_published(context, storage, stage)
    if not stores["heldout"]:  # a single-video dataset: say so, score nothing (never the training data)
        reason = (f"no held-out video: the dataset has {len(manifest['train'])} training video(s) and none held "
                  "out, so there is nothing to evaluate on. Add videos (about 1 in 4 is held out).")
        context.log.warning(reason)
        return MaterializeResult(
            metadata={"status": reason, "heldout_videos": "none", "manifest_version": manifest["version"]},
            check_results=[_check(name, False, {"reason": reason})
                           for name in ("beats_persistence_h1", "few_steps_close", "no_nan", "split_disjoint")])
    run_name = time.strftime("%Y%m%d-%H%M%S") + f"-{context.run.run_id[:8]}"
    lineage = {
        "manifest_version": manifest["version"],
        "videos": manifest["heldout"],
        "train_videos": manifest["train"],
        "tokenizer_sha256": manifest_lib.file_sha256(storage.layout.tokenizer_checkpoint),
        "dynamics_sha256": manifest_lib.file_sha256(storage.layout.dynamics_checkpoint),
        "code_versions": CODE_VERSIONS,
        "run_id": context.run.run_id,
    }
    with compute.step_device(storage, context.log.info) as device:
        result = evaluate(
            storage.layout.tokenizer_checkpoint,
            storage.layout.dynamics_checkpoint,
            stores["heldout"],
            preset.evaluation,
            storage.layout.report_dir(run_name),
            lineage=lineage,
            device=device,
            log=context.log.info,
            estimate_motion=project.motion_estimator(),
        )
    metrics = result["metrics"]
    metadata = {
        **result["flat"],
        "preset": preset.name,
        "report": MetadataValue.path(str(result["report_path"])),
        "metrics_table": MetadataValue.md(metrics_table_markdown(metrics)),
        "psnr_table": metrics_table(metrics),
        "prediction_strip": MetadataValue.md(image_markdown(result["strip_png"], "ground truth (top) vs prediction")),
        "psnr_vs_horizon": MetadataValue.md(image_markdown(result["plot_png"], "PSNR vs horizon")),
        "heldout_videos": ", ".join(metrics["videos"]),
        "manifest_version": manifest["version"],
        # the play page for this model pair: `make play` serves it (on the machine that holds the data root)
        "play": MetadataValue.url(f"http://127.0.0.1:{PLAY_PORT}/"),
        "play_command": MetadataValue.text("make play" if storage.path == PROJECT_ROOT / "assets"
                                           else f"make play DATA_ROOT={storage.path}"),
    }
    evaluated = metrics["videos"]
    return MaterializeResult(
        metadata=metadata,
        data_version=DataVersion(manifest_lib.file_sha256(result["metrics_path"])),
        check_results=[
            _check("beats_persistence_h1", *check_beats_persistence(metrics, 1)),
            _check("few_steps_close", *check_few_steps_close(metrics)),
            _check("no_nan", *check_no_nan(metrics)),
            _check("split_disjoint", *check_split_disjoint(manifest["train"] + manifest["missing"], evaluated)),
        ],
    )


def _require_published(context: AssetExecutionContext, storage: StorageResource, stage: str) -> None:
    """A clear error when an upstream training asset has no published output: name it, and its last failure."""
    path = storage.layout.checkpoint(stage)
    if path.exists():
        return
    detail = "it has never been materialized"
    from dagster import DagsterRunStatus, RunsFilter

    failed = context.instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.FAILURE]), limit=50)
    for run in failed:
        if run.asset_selection and any(k.to_user_string() == stage for k in run.asset_selection):
            detail = f"its latest run {run.run_id} failed"
            break
    raise RuntimeError(f"upstream asset `{stage}` has no published checkpoint ({path}): {detail}. Fix and "
                       f"materialize `{stage}` first.")


def _run_dir(storage: StorageResource, stage: str, *inputs) -> Path:
    """A training run's folder, keyed by everything it depends on: a rerun on the same inputs resumes from its
    last checkpoint, a rerun on new data or config starts fresh (never resumes a finished run on other data)."""
    key = hashlib.sha256(json.dumps([str(i) for i in inputs]).encode()).hexdigest()[:16]
    path = storage.layout.run_dir(stage, key)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _publish_if_passed(passed: bool, src: Path, dst: Path, context: AssetExecutionContext) -> dict:
    """Publish a training run's output only when its blocking checks passed; otherwise the previous published
    one stays, and the failed one stays in its run folder. Returns metadata saying where each is."""
    where = {"checkpoint": MetadataValue.path(str(src)), "published": bool(passed)}
    if passed:
        where["published_checkpoint"] = MetadataValue.path(str(_publish(src, dst)))
        return where
    kept = MetadataValue.path(str(dst)) if dst.exists() else "none (never published)"
    where["kept_published_checkpoint"] = kept
    context.log.warning(f"a blocking check failed: {src} is not published; {dst} "
                        f"{'keeps the previous one' if dst.exists() else 'stays absent'}")
    return where


def _publish(src: Path, dst: Path) -> Path:
    """Copy a finished checkpoint to the stage's well-known path atomically (readers never see half a file)."""
    return copy_file(src, dst)


def _check(name: str, passed: bool, details: dict, severity=AssetCheckSeverity.WARN) -> AssetCheckResult:
    return AssetCheckResult(check_name=name, passed=bool(passed), metadata=_scalars(details), severity=severity)


def _scalars(stats: dict) -> dict:
    """The numbers and strings of a stats dict, as Dagster metadata (nested values become JSON)."""
    out = {}
    for key, value in stats.items():
        if isinstance(value, (bool, MetadataValue)):
            out[key] = value
        elif isinstance(value, (int, float, str)):
            out[key] = value
        elif isinstance(value, Path):
            out[key] = MetadataValue.path(str(value))
        elif isinstance(value, (list, tuple, dict)) and len(json.dumps(value, default=str)) < 2000:
            out[key] = MetadataValue.json(value if isinstance(value, dict) else {"values": list(value)})
    return out
