"""Test support: what the UI's "Materialize unsynced" would rerun: asset partitions that are stale (a dependency's
data or the
code version changed) plus everything downstream of them (unsynced).

Staleness is read from the provenance Dagster records on every materialization (its code version, and each
input's data version and event pointer), with the rules of the UI's stale status: a new code version, a dependency
added or removed, or a dependency whose data version changed since the materialization read it. Partitioned
dependencies map per partition: same key for per-video children, every partition for dataset-wide ones (none
past Dagster's limit of 100, which it also skips).
"""

from __future__ import annotations

from dagster import AssetKey, AssetRecordsFilter, AssetsDefinition, DagsterInstance, DataProvenance, EventLogRecord

# Dagster compares at most this many partitions of one dependency, for performance; so do we.
MAX_PARTITION_DEPS = 100
DATA_VERSION_TAG = "dagster/data_version"
NO_DATA_VERSION = "NULL"  # what Dagster records for an input that was never materialized


def stale_partitions(instance: DagsterInstance, assets: list[AssetsDefinition]) -> list[tuple[str, str | None]]:
    """Directly stale (asset, partition) pairs, in the same terms the UI shows."""
    reader = _Records(instance)
    by_key = {a.key: a for a in assets}
    out = []
    for asset in assets:
        for pk in _partitions(asset, instance):
            if _is_stale(reader, instance, by_key, asset, pk):
                out.append((asset.key.to_user_string(), pk))
    return out


def unsynced_partitions(instance: DagsterInstance, assets: list[AssetsDefinition]) -> set[tuple[str, str | None]]:
    """Stale partitions and everything downstream of them: what must rerun, in any order the graph allows."""
    by_name = {a.key.to_user_string(): a for a in assets}
    children = {name: [c for c in by_name if by_name[name].key in by_name[c].dependency_keys] for name in by_name}
    todo = list(stale_partitions(instance, assets))
    seen = set(todo)
    while todo:
        name, pk = todo.pop()
        for child in children[name]:
            child_asset = by_name[child]
            if child_asset.partitions_def is None:
                targets = [None]
            elif pk is not None:  # per-video -> per-video: the same video
                targets = [pk]
            else:  # a shared stage (the tokenizer) feeds every video's partition
                targets = _partitions(child_asset, instance)
            for target in targets:
                if (child, target) not in seen:
                    seen.add((child, target))
                    todo.append((child, target))
    return seen


class _Records:
    """Materialization records, fetched once per question."""

    def __init__(self, instance: DagsterInstance):
        self.instance = instance
        self._latest: dict[tuple[AssetKey, str | None], EventLogRecord | None] = {}

    def latest(self, key: AssetKey, pk: str | None, before_storage_id: int | None = None) -> EventLogRecord | None:
        if before_storage_id is None and (key, pk) in self._latest:
            return self._latest[(key, pk)]
        records = self.instance.fetch_materializations(
            AssetRecordsFilter(
                asset_key=key, asset_partitions=[pk] if pk is not None else None, before_storage_id=before_storage_id
            ),
            limit=1,
        ).records
        record = records[0] if records else None
        if before_storage_id is None:
            self._latest[(key, pk)] = record
        return record


def _data_version(record: EventLogRecord | None) -> str:
    if record is None:
        return NO_DATA_VERSION
    return record.asset_materialization.tags.get(DATA_VERSION_TAG, NO_DATA_VERSION)


def _is_stale(
    reader: _Records, instance: DagsterInstance, by_key: dict, asset: AssetsDefinition, pk: str | None
) -> bool:
    record = reader.latest(asset.key, pk)
    if record is None:  # missing, not stale
        return False
    provenance = DataProvenance.from_tags(record.asset_materialization.tags)
    deps = set(asset.dependency_keys)
    if provenance is None:  # materialized outside Dagster's versioning: newer inputs make it stale
        return any(_dep_newer_than(reader, instance, by_key[d], asset, pk, record.storage_id) for d in deps)
    code_version = next(iter(asset.specs)).code_version
    if code_version and code_version != provenance.code_version:
        return True
    if set(provenance.input_data_versions) - deps:  # a removed dependency
        return True
    for dep_key in deps:
        dep = by_key[dep_key]
        if not provenance.has_input_asset(dep_key):  # a new dependency
            return True
        if dep.partitions_def is None:
            if _data_version(reader.latest(dep_key, None)) != provenance.input_data_versions[dep_key].value:
                return True
            continue
        cursor = provenance.input_storage_ids[dep_key]
        for dep_pk in _dep_partitions(dep, asset, pk, instance):
            latest = reader.latest(dep_key, dep_pk)
            if latest is None or (cursor is not None and latest.storage_id <= cursor):
                continue  # not updated since this materialization read it
            read = reader.latest(dep_key, dep_pk, before_storage_id=cursor + 1 if cursor is not None else None)
            if _data_version(read if cursor is not None else None) != _data_version(latest):
                return True
    return False


def _dep_newer_than(
    reader: _Records,
    instance: DagsterInstance,
    dep: AssetsDefinition,
    asset: AssetsDefinition,
    pk: str | None,
    storage_id: int,
) -> bool:
    pks = [None] if dep.partitions_def is None else _dep_partitions(dep, asset, pk, instance)
    return any((r := reader.latest(dep.key, p)) is None or r.storage_id > storage_id for p in pks)


def _dep_partitions(
    dep: AssetsDefinition, asset: AssetsDefinition, pk: str | None, instance: DagsterInstance
) -> list[str]:
    """The partitions of a partitioned dependency that one partition of `asset` reads."""
    if asset.partitions_def is not None:
        if asset.partitions_def != dep.partitions_def:
            raise NotImplementedError(
                f"{asset.key.to_user_string()} <- {dep.key.to_user_string()}: only "
                "same-partitioned dependencies map per partition"
            )
        return [pk]
    keys = _partitions(dep, instance)
    return keys if len(keys) < MAX_PARTITION_DEPS else []


def _partitions(asset: AssetsDefinition, instance: DagsterInstance) -> list[str | None]:
    if asset.partitions_def is None:
        return [None]
    return list(asset.partitions_def.get_partition_keys(dynamic_partitions_store=instance))
