"""Reading asset check results back from a Dagster instance."""

from __future__ import annotations

from dagster import AssetCheckKey, AssetKey


def recorded(instance, asset: str, check: str, partition: str | None = None) -> tuple[bool, dict]:
    """(passed, metadata) of the latest evaluation of `check` on `asset` (and partition) in the instance."""
    records = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey(asset), check), limit=50
    )
    for record in records:  # newest first; a partition's checks ran in that partition's run
        evaluation = record.event.dagster_event.event_specific_data
        run_partition = instance.get_run_by_id(record.run_id).tags.get("dagster/partition")
        if partition is None or partition in (evaluation.partition, run_partition):
            return bool(evaluation.passed), {k: v.value for k, v in evaluation.metadata.items()}
    raise AssertionError(f"no recorded evaluation of {asset}:{check} [{partition}]")
