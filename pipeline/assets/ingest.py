"""Ingest: one video fetched, its frames extracted (per video), and the dataset manifest over all of them."""

import time

from dagster import (
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AutomationCondition,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)

from ahriuwu_core.data import catalog
from ahriuwu_core.data import manifest as manifest_lib
from ahriuwu_core.data.conventions import FETCHED_SIDECARS
from pipeline.assets.common import (
    FETCH_NEW_VIDEO,
    FOLLOW_INPUTS,
    OWNER,
    check_result,
    deployed_code_version,
    scalars,
    video_partitions,
)
from pipeline.code_versions import run_tags
from pipeline.resources import ProjectResource, StorageResource


class VideosConfig(Config):
    """refetch: download again even when the video is already there (e.g. its source file changed)."""

    refetch: bool = False


@asset(
    partitions_def=video_partitions,
    group_name="ingest",
    code_version=deployed_code_version("videos"),
    kinds={"yt-dlp"},
    tags={"compute": "cpu", "scope": "per_video"},
    owners=[OWNER],
    automation_condition=FETCH_NEW_VIDEO,
    description="One source video fetched with yt-dlp (YouTube, HTTP, file://) into videos/<id>/, with its "
    "raw info parsed metadata and, where the source has one, the actions sidecar.",
)
def videos(
    context: AssetExecutionContext, config: VideosConfig, storage: StorageResource, project: ProjectResource
) -> MaterializeResult:
    from ahriuwu_core.sources import fetch_video

    video_id = context.partition_key
    entry = catalog.catalog_entry(storage.path, video_id)
    start = time.perf_counter()
    info = fetch_video(
        entry, storage.layout.videos_dir, project.source_config(), log=context.log.info, refetch=config.refetch
    )
    meta = {k: v for k, v in info.items() if isinstance(v, (int, float, str)) and v is not None and k != "url"}
    if entry.get("url"):  # the source page (or file://), clickable in the UI
        meta["url"] = MetadataValue.url(entry["url"])
    return MaterializeResult(
        metadata={**meta, "seconds": round(time.perf_counter() - start, 2)},
        data_version=DataVersion(info["sha256"]),
        tags=run_tags("videos", project),
    )


@asset(
    partitions_def=video_partitions,
    deps=[videos],
    group_name="ingest",
    code_version=deployed_code_version("frames"),
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
    from ahriuwu_core.data.frames import check_frame_count, check_not_black_or_frozen, extract_frames

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
        metadata={**scalars(stats), "path": MetadataValue.path(str(store)), "preset": preset.name},
        data_version=DataVersion(stats["content_hash"]),
        tags=run_tags("frames", project),
        check_results=[
            check_result("frame_count", *check_frame_count(stats)),
            check_result("not_black_or_frozen", *check_not_black_or_frozen(store)),
        ],
    )


@asset(
    deps=[frames],
    group_name="dataset",
    code_version=deployed_code_version("dataset_manifest"),
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
    check_specs=[
        AssetCheckSpec(
            "split_disjoint",
            asset="dataset_manifest",
            blocking=True,
            description="no video is in two of train, validation and test",
        )
    ],
    description="Every video with extracted frames, its content hash and its split (train / validation / test). "
    "Its data version hashes the per-video hashes in sorted order, so training goes stale exactly when a video "
    "changes, however many videos there are.",
)
def dataset_manifest(
    context: AssetExecutionContext, storage: StorageResource, project: ProjectResource
) -> MaterializeResult:
    from ahriuwu_core.data.split import check_split_disjoint

    # One dataset per source: partitions registered from another source (say, the demo's, before switching to a
    # channel) stay in the instance but never reach training.
    video_ids, others = catalog.of_source(
        storage.path, context.instance.get_dynamic_partitions(video_partitions.name), project.setting("source")
    )
    if others:
        context.log.info(f"{len(others)} video(s) registered from another source left out: {', '.join(others[:10])}")
    preset = project.preset_config()
    manifest = manifest_lib.build_manifest(storage.path, video_ids, preset.split)
    split_ok, split_details = check_split_disjoint(manifest["train"], manifest["validation"] + manifest["test"])
    if not split_ok:  # never publish a manifest whose split leaks: training would read it
        raise ValueError(f"dataset split leaks: {split_details}")
    path = manifest_lib.write_manifest(storage.path, manifest)
    for video_id in manifest["missing"]:
        context.log.warning(f"video {video_id!r} has no frames store yet; left out of the manifest")
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(path)),
            "preset": preset.name,
            "source": project.setting("source"),
            "other_source_videos": len(others),
            "num_videos": len(manifest["videos"]),
            "num_train": len(manifest["train"]),
            "num_validation": len(manifest["validation"]),
            "num_test": len(manifest["test"]),
            "num_frames": sum(v["num_frames"] for v in manifest["videos"]),
            "missing": ", ".join(manifest["missing"]) or "none",
            "split": MetadataValue.json({s: manifest[s] for s in ("train", "validation", "test")}),
            "action_space": MetadataValue.json(manifest["action_space"] or {"components": [], "num_classes": []}),
        },
        data_version=DataVersion(manifest["version"]),
        tags=run_tags("dataset_manifest", project),
        check_results=[check_result("split_disjoint", split_ok, split_details, AssetCheckSeverity.ERROR)],
    )
