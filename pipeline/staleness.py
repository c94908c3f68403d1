"""What the UI's "Materialize unsynced" would rerun: asset partitions that are stale (a dependency's data or the
code version changed, per Dagster's own resolver) plus everything downstream of them (unsynced)."""
from __future__ import annotations

from dagster import AssetsDefinition, DagsterInstance
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._time import get_current_datetime


def stale_partitions(instance: DagsterInstance, assets: list[AssetsDefinition]) -> list[tuple[str, str | None]]:
    """Directly stale (asset, partition) pairs, in the same terms the UI shows."""
    graph = AssetGraph.from_assets(assets)
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=graph,
    )
    resolver = CachingStaleStatusResolver(instance=instance, asset_graph=graph, loading_context=view)
    return [
        (asset.key.to_user_string(), pk)
        for asset in assets
        for pk in _partitions(asset, instance)
        if resolver.get_status(asset.key, pk) == StaleStatus.STALE
    ]


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


def _partitions(asset: AssetsDefinition, instance: DagsterInstance) -> list[str | None]:
    if asset.partitions_def is None:
        return [None]
    return list(asset.partitions_def.get_partition_keys(dynamic_partitions_store=instance))
