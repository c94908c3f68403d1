"""Test support: staleness in Dagster's own judgement, from its stale-status resolver (the one behind the UI's stale
badges and causes) over the given asset definitions.

- stale: the asset partitions Dagster calls STALE: their code version or an input's data version changed since
  they were materialized. Dagster judges each against its inputs as they are now, so what lies further downstream
  goes stale only once those inputs are rematerialized;
- unsynced: the stale ones and everything downstream of them (per video for per-video children, every partition
  below a dataset-wide asset): what a rerun must reach.
"""

from __future__ import annotations

from dagster import AssetsDefinition, DagsterInstance
from dagster._utils.test.data_versions import get_stale_status_resolver


def stale_causes(instance: DagsterInstance, assets: list[AssetsDefinition]) -> dict[tuple[str, str | None], list]:
    """(asset, partition) -> the causes Dagster gives, for every stale asset partition."""
    resolver = get_stale_status_resolver(instance, assets)
    out = {}
    for asset in assets:
        for pk in _partitions(asset, instance):
            if resolver.get_status(asset.key, pk).value == "STALE":
                out[(asset.key.to_user_string(), pk)] = list(resolver.get_stale_causes(asset.key, pk))
    return out


def stale_partitions(instance: DagsterInstance, assets: list[AssetsDefinition]) -> list[tuple[str, str | None]]:
    """The stale (asset, partition) pairs, sorted."""
    return sorted(stale_causes(instance, assets), key=lambda k: (k[0], k[1] or ""))


def unsynced_partitions(instance: DagsterInstance, assets: list[AssetsDefinition]) -> set[tuple[str, str | None]]:
    """The stale pairs and everything downstream of them."""
    by_name = {a.key.to_user_string(): a for a in assets}
    children = {name: [c for c in by_name if by_name[name].key in by_name[c].dependency_keys] for name in by_name}
    todo = list(stale_causes(instance, assets))
    seen = set(todo)
    while todo:
        name, pk = todo.pop()
        for child in children[name]:
            if by_name[child].partitions_def is None:
                targets = [None]
            elif pk is not None:  # per-video -> per-video: the same video
                targets = [pk]
            else:  # a dataset-wide stage (the tokenizer) feeds every video's partition
                targets = _partitions(by_name[child], instance)
            for target in targets:
                if (child, target) not in seen:
                    seen.add((child, target))
                    todo.append((child, target))
    return seen


def _partitions(asset: AssetsDefinition, instance: DagsterInstance) -> list[str | None]:
    if asset.partitions_def is None:
        return [None]
    return list(asset.partitions_def.get_partition_keys(dynamic_partitions_store=instance))
