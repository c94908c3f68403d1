"""Reading asset check results back from a Dagster instance."""
from __future__ import annotations

from dagster import AssetCheckKey, AssetKey


def recorded(instance, asset: str, check: str, partition: str | None = None) -> tuple[bool, dict]:
    """(passed, metadata) of the latest evaluation of `check` on `asset` (and partition) in the instance."""
    records = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey(asset), check), limit=50)
    for record in records:  # newest first
        evaluation = record.event.dagster_event.event_specific_data
        if partition is None or evaluation.partition == partition:
            return bool(evaluation.passed), {k: v.value for k, v in evaluation.metadata.items()}
    raise AssertionError(f"no recorded evaluation of {asset}:{check} [{partition}]")
