"""What every stage shares: the video partitions, the owner, the deployment's project, the automation conditions,
and the helpers that publish a training output and turn results into metadata and check results."""

import hashlib
import json
import math
import os
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetSelection,
    AutomationCondition,
    DataVersion,
    DynamicPartitionsDefinition,
    MetadataValue,
)

from ahriuwu_core.data import models
from ahriuwu_core.data.files import prune_runs
from pipeline.code_versions import code_version
from pipeline.resources import ProjectResource, StorageResource

video_partitions = DynamicPartitionsDefinition(name="videos")
# Who answers for every stage (the UI's owner column and filters). Asset tags: `compute` (cpu or gpu, as its
# pool says) and `scope` (per_video: one partition per video; dataset: one over the whole dataset).
OWNER = "team:ml"

# Code versions: pipeline/code_versions.py derives each stage's from the library source it runs and the settings it
# reads. The definitions carry the deployment's (the environment `dagster dev` or `make demo` loads with).
DEPLOYMENT_PROJECT = ProjectResource()  # every field from the environment, as resources_from_env builds it


def deployed_code_version(stage: str) -> str:
    """The stage's code version in the definitions: for the deployment's project."""
    return code_version(stage, DEPLOYMENT_PROJECT)


# Automation. The new_videos sensor only adds partitions; these conditions request every per-video run, so each
# stage of a new video is requested once. None requests while a run for it is in flight, and a failed run is not
# retried until its input changes (a video's fetch: until materialized by hand).
# A fetch is requested once per partition that becomes missing (also those already there at the first evaluation,
# unlike on_missing()), then not again whether or not its run has been launched yet.
FETCH_NEW_VIDEO = (
    AutomationCondition.missing()
    .newly_true()
    .since(AutomationCondition.newly_requested() | AutomationCondition.newly_updated())
    & ~AutomationCondition.in_progress()
    & ~AutomationCondition.execution_failed()
).with_label("newly_missing_once")
# An input changed: its data version differs from the one it had at the last tick (re-materializing identical
# bytes is not a change, so GPU stages never rerun for a rewrite), or it is requested on this tick (a chain goes in
# one run, as in eager()). Not when it was updated by a run of this very asset.
_INPUT_CHANGED = AutomationCondition.any_deps_match(
    (AutomationCondition.data_version_changed() & ~AutomationCondition.executed_with_root_target()).with_label(
        "data_version_changed_without_root"
    )
    | AutomationCondition.will_be_requested()
).with_label("any_input_changed")
# eager() on data changes: once per new partition or input change, not while it or an input is in progress; and
# never past a failed blocking check upstream.
FOLLOW_INPUTS = (
    (AutomationCondition.newly_missing() | _INPUT_CHANGED).since_last_handled()
    & ~AutomationCondition.any_deps_missing()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
    & AutomationCondition.all_deps_blocking_checks_passed()
).with_label("on_new_partition_or_input_change")

# Retraining (the `weekly_retrain` schedule requests the tokenizer, or you do): latents follow a changed tokenizer
# through FOLLOW_INPUTS; the world model retrains once every video is re-encoded with it (or failed), and the
# evaluation follows a changed world model. New videos alone (new latents, a new manifest) retrain nothing, and a
# retrain that republishes the same model (same sha, same data version) requests nothing downstream.
_TOKENIZER_CHANGED = AutomationCondition.any_deps_match(AutomationCondition.data_version_changed()).allow(
    AssetSelection.assets("tokenizer")
)
# No latents partition left that has not been updated since the tokenizer changed (all_deps_match would be satisfied
# by any one partition of a partitioned dep).
# A partition whose re-encode failed, or that cannot be encoded (its frames are missing: they failed), does not
# hold training back: the world model leaves it out and names it (its `all_training_videos_used` check).
_REENCODED = ~AutomationCondition.any_deps_match(
    ~AutomationCondition.newly_updated().since(_TOKENIZER_CHANGED)
    & ~AutomationCondition.execution_failed()
    & ~(AutomationCondition.missing() & AutomationCondition.any_deps_missing())
).allow(AssetSelection.assets("latents"))
AFTER_NEW_TOKENIZER = (
    _TOKENIZER_CHANGED.since(AutomationCondition.newly_requested() | AutomationCondition.newly_updated())
    & _REENCODED
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
    & AutomationCondition.all_deps_blocking_checks_passed()
).with_label("after_new_tokenizer_and_its_latents")
AFTER_NEW_WORLD_MODEL = (
    AutomationCondition.any_deps_match(AutomationCondition.data_version_changed())
    .allow(AssetSelection.assets("dynamics"))
    .since(AutomationCondition.newly_requested() | AutomationCondition.newly_updated())
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
    & AutomationCondition.all_deps_blocking_checks_passed()
).with_label("after_new_world_model")


def require_published(context: AssetExecutionContext, storage: StorageResource, stage: str) -> None:
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
    raise RuntimeError(
        f"upstream asset `{stage}` has no published checkpoint ({path}): {detail}. Fix and materialize `{stage}` first."
    )


def training_run_dir(storage: StorageResource, stage: str, *inputs, log=print) -> Path:
    """A training run's folder, keyed by everything it depends on: a rerun on the same inputs resumes from its
    last checkpoint, a rerun on new data or config starts fresh (never resumes a finished run on other data).
    Older run folders beyond `storage.keep_runs` are removed (each holds a resume checkpoint with optimizer
    state); the published checkpoint is a copy, so it stays."""
    key = hashlib.sha256(json.dumps([str(i) for i in inputs]).encode()).hexdigest()[:16]
    path = storage.layout.run_dir(stage, key)
    path.mkdir(parents=True, exist_ok=True)
    os.utime(path)  # the newest run, whatever the folder's age, for the pruning below
    prune_runs(path.parent, storage.keep_runs, current=path, log=log)
    return path


def publish_if_passed(
    passed: bool, src: Path, storage: StorageResource, stage: str, context: AssetExecutionContext
) -> tuple[dict, DataVersion]:
    """Publish a training run's output (content-addressed, ahriuwu_core/data/models.py) only when its blocking
    checks passed; otherwise the current model stays, and the failed one stays in its run folder.

    Returns metadata saying where each is, and the data version to record: the published model's sha256, or, after
    a failed check, the current model's, so that nothing downstream changes ("none" before any was published)."""
    where = {"checkpoint": MetadataValue.path(str(src)), "published": bool(passed)}
    if passed:
        path, sha = models.publish(storage.layout, stage, src)
        where.update(model=MetadataValue.path(str(path)), model_sha256=sha)
        return where, DataVersion(sha)
    now = models.current(storage.layout, stage)
    where["kept_model"] = MetadataValue.path(str(now[0])) if now else "none (never published)"
    context.log.warning(
        f"a blocking check failed: {src} is not published; "
        + (f"{now[0]} stays the current model" if now else "no model is published")
    )
    return where, DataVersion(now[1] if now else "none")


def check_result(name: str, passed: bool, details: dict, severity=AssetCheckSeverity.WARN) -> AssetCheckResult:
    return AssetCheckResult(check_name=name, passed=bool(passed), metadata=scalars(details), severity=severity)


def tensorboard_metadata(project, storage, run_dir: Path) -> dict:
    """Where this run's TensorBoard event files are, the command that shows them, and, with AHRIUWU_TENSORBOARD_URL
    (a TensorBoard over the data root, e.g. `make tensorboard`), a link to it."""
    run = Path(run_dir).relative_to(storage.path) if Path(run_dir).is_relative_to(storage.path) else Path(run_dir)
    out = {
        "tensorboard_run": str(run),
        "tensorboard_command": MetadataValue.text(f"tensorboard --logdir {run_dir}"),
    }
    if url := project.setting("tensorboard_url"):
        out["tensorboard"] = MetadataValue.url(url)
    return out


def readable(value: float) -> float:
    """A float as the UI should show it: 4 significant digits (never rounding away integer digits). The full
    values stay in the run folder's JSON files."""
    if not math.isfinite(value) or value == 0:
        return value
    return round(value, max(0, 3 - math.floor(math.log10(abs(value)))))


def scalars(stats: dict) -> dict:
    """The numbers and strings of a stats dict, as Dagster metadata (nested values become JSON), floats
    `readable`."""
    out = {}
    for key, value in stats.items():
        if isinstance(value, (bool, MetadataValue)):
            out[key] = value
        elif isinstance(value, float):
            out[key] = readable(value)
        elif isinstance(value, (int, str)):
            out[key] = value
        elif isinstance(value, Path):
            out[key] = MetadataValue.path(str(value))
        elif isinstance(value, (list, tuple, dict)) and len(json.dumps(value, default=str)) < 2000:
            out[key] = MetadataValue.json(value if isinstance(value, dict) else {"values": list(value)})
    return out
