"""What the UI's "Materialize unsynced" would rerun: asset partitions whose data or code version went stale."""
from __future__ import annotations

from dagster import AssetsDefinition, DagsterInstance
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._time import get_current_datetime


def stale_partitions(instance: DagsterInstance, assets: list[AssetsDefinition]) -> list[tuple[str, str | None]]:
    """(asset, partition) pairs that are stale, in the same terms the UI shows (dagster's own resolver)."""
    graph = AssetGraph.from_assets(assets)
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=graph,
    )
    resolver = CachingStaleStatusResolver(instance=instance, asset_graph=graph, loading_context=view)
    out = []
    for asset in assets:
        key = asset.key
        partitions = (
            asset.partitions_def.get_partition_keys(dynamic_partitions_store=instance)
            if asset.partitions_def
            else [None]
        )
        for pk in partitions:
            if resolver.get_status(key, pk) == StaleStatus.STALE:
                out.append((key.to_user_string(), pk))
    return out
