"""Retraining: a weekly schedule (it ships stopped) and a freshness signal on the world model and its evaluation.

The schedule requests the tokenizer alone. The rest follows through the assets' automation conditions, evaluated
by the `training_automation` sensor: every `latents` partition (FOLLOW_INPUTS), then `dynamics` once all of them are
re-encoded (AFTER_NEW_TOKENIZER), then `evaluation` (AFTER_NEW_WORLD_MODEL). One run cannot hold them: latents are
per video, the others are not. Schedules cannot launch asset backfills in Dagster 1.13.
"""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetSelection,
    AutomationCondition,
    DefaultScheduleStatus,
    ScheduleDefinition,
    asset_check,
    define_asset_job,
)

from ahriuwu_core.data import manifest as manifest_lib
from pipeline.assets import dataset_manifest, dynamics, evaluation, tokenizer
from pipeline.resources import StorageResource

retrain_job = define_asset_job(
    "retrain",
    selection=AssetSelection.assets(tokenizer),
    description="Retrain the tokenizer on the current dataset; its latents, the world model and the evaluation "
    "follow through automation.",
)

weekly_retrain = ScheduleDefinition(
    name="weekly_retrain",
    job=retrain_job,
    cron_schedule="0 3 * * 1",  # Mondays 03:00
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Weekly retrain: the tokenizer, then (automation) every video's latents, the world model and its "
    "evaluation. Stopped until you start it.",
)


def _trained_on_current_data(asset_def):
    key = asset_def.key

    @asset_check(
        asset=asset_def,
        name="trained_on_current_data",
        additional_deps=[dataset_manifest],
        blocking=False,
        # Re-judged whenever the manifest changes, so a new video flags the model without retraining it; not
        # before the model exists, nor while it is being made (the check's deps are its asset and the manifest).
        automation_condition=(
            AutomationCondition.any_deps_updated().allow(AssetSelection.assets(dataset_manifest))
            & ~AutomationCondition.any_deps_missing()
            & ~AutomationCondition.any_deps_in_progress()
        ).with_label("after_manifest_update"),
        description=f"the dataset manifest `{key.to_user_string()}` was made from is the current one (warns after "
        "new or changed videos until it is rematerialized)",
    )
    def check(context: AssetCheckExecutionContext, storage: StorageResource) -> AssetCheckResult:
        event = context.instance.get_latest_materialization_event(key)
        recorded = event.asset_materialization.metadata.get("manifest_version") if event else None
        current = manifest_lib.read_manifest(storage.path)["version"] if storage.layout.manifest.exists() else None
        passed, details = manifest_lib.check_trained_on_current(recorded.value if recorded else None, current)
        return AssetCheckResult(passed=passed, severity=AssetCheckSeverity.WARN, metadata=details)

    return check


FRESHNESS_CHECKS = [_trained_on_current_data(dynamics), _trained_on_current_data(evaluation)]
