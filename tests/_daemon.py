"""What the Dagster daemon does with the project's sensors and automation conditions, one call at a time, so that
tests can drive it tick by tick on a scratch instance."""

from __future__ import annotations

from collections import Counter

from dagster import AssetKey, DagsterRunStatus, build_sensor_context, materialize


class Daemon:
    """What the daemon does, one call at a time: sensor ticks, automation ticks, launching their runs. Counts every
    (asset, partition) requested by either, the sensor's own run requests included."""

    def __init__(self, instance, resources):
        from pipeline.definitions import defs

        self.instance, self.resources, self.defs = instance, resources, defs
        self.cursors: dict = {}
        self.evaluation_id = 0
        self.requested: Counter = Counter()

    def _count(self, run_requests):
        for req in run_requests:
            for partition, keys in _requested(req):
                for key in keys:
                    self.requested[(key.to_user_string(), partition)] += 1
        return run_requests

    def sensor_tick(self) -> list:
        """The real new_videos sensor; applies its partition requests as the daemon does. Returns its run requests."""
        from pipeline.sensors import new_videos_sensor

        context = build_sensor_context(
            instance=self.instance, resources={k: self.resources[k] for k in ("storage", "project")}
        )
        result = new_videos_sensor(context)
        for req in getattr(result, "dynamic_partitions_requests", None) or []:
            self.instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        return self._count(list(getattr(result, "run_requests", None) or []))

    def automation_tick(self) -> list:
        """One tick of each of the project's automation sensors, evaluated as the asset daemon evaluates them: its
        own target and cursor, and its own `emit_backfills` (production keeps Dagster's default, on: a tick that
        requests several partitions of an asset requests one backfill). Returns their requests."""
        import logging

        from dagster import AssetCheckKey, AssetSelection, AutomationConditionSensorDefinition
        from dagster._core.definitions.asset_daemon_cursor import AssetDaemonCursor
        from dagster._core.definitions.automation_tick_evaluation_context import AutomationTickEvaluationContext

        graph = self.defs.resolve_asset_graph()
        requests = []
        for sensor in self.defs.sensors:
            if not isinstance(sensor, AutomationConditionSensorDefinition):
                continue
            keys = sensor.asset_selection.resolve(graph) | sensor.asset_selection.resolve_checks(graph)
            selection = AssetSelection.assets(*(k for k in keys if isinstance(k, AssetKey))).without_checks()
            selection |= AssetSelection.checks(*(k for k in keys if isinstance(k, AssetCheckKey)))
            cursor = self.cursors.get(sensor.name) or AssetDaemonCursor.empty()
            self.evaluation_id += 1
            tick_requests, self.cursors[sensor.name], _ = AutomationTickEvaluationContext(
                evaluation_id=self.evaluation_id,
                instance=self.instance,
                asset_graph=graph,
                cursor=cursor,
                materialize_run_tags={},
                observe_run_tags={},
                auto_observe_asset_keys=set(),
                asset_selection=selection,
                logger=logging.getLogger("automation"),
                emit_backfills=sensor.emit_backfills,
            ).evaluate()
            requests += tick_requests
        return self._count(requests)

    def runs_of(self, run_requests) -> list:
        """The runs the requests become: a run request is one run; a backfill request becomes what Dagster's backfill
        daemon launches for these assets (no backfill policy): one run per partition with that partition's
        requested assets, and one for the unpartitioned ones, parents before children."""
        from dagster import RunRequest

        graph = self.defs.resolve_asset_graph()
        order = {key: i for i, key in enumerate(graph.toposorted_asset_keys)}
        runs = []
        for req in run_requests:
            if req.asset_graph_subset is None:
                runs.append(req)
                continue
            by_partition: dict = {}
            for ap in req.asset_graph_subset.iterate_asset_partitions():
                by_partition.setdefault(ap.partition_key, []).append(ap.asset_key)
            expanded = [
                RunRequest(asset_selection=sorted(keys, key=order.get), partition_key=partition)
                for partition, keys in by_partition.items()
            ]
            runs += sorted(expanded, key=lambda r: (min(order[k] for k in r.asset_selection), r.partition_key or ""))
        return runs

    def launch(self, run_requests, assets=None) -> list[bool]:
        """Execute the requests' runs in process (success per run; failures are recorded, not raised). assets: the
        definitions to execute them with (default: the project's)."""
        from dagster import AssetSelection

        from pipeline.definitions import ALL_ASSETS
        from pipeline.retraining import FRESHNESS_CHECKS

        return [
            materialize(
                [*(assets or ALL_ASSETS), *FRESHNESS_CHECKS],
                selection=req.asset_selection or AssetSelection.checks(*req.asset_check_keys),
                partition_key=req.partition_key,
                instance=self.instance,
                resources=self.resources,
                raise_on_error=False,
            ).success
            for req in self.runs_of(run_requests)
        ]

    def start_run(self, assets: list[str], partition: str) -> str:
        """A run of `assets` for `partition` that has started and not yet executed them (as launched from the UI)."""
        keys = [AssetKey(a) for a in assets]
        job = self.defs.resolve_implicit_job_def_def_for_assets(keys)
        run = self.instance.create_run_for_job(
            job, asset_selection=frozenset(keys), status=DagsterRunStatus.STARTED, tags={"dagster/partition": partition}
        )
        return run.run_id


def _requested(request) -> list[tuple[str | None, list]]:
    """(partition, keys) that a request asks for: its assets, or for a request of checks alone its checks (an
    asset's own checks run with it); a backfill request asks for its partitions' assets."""
    if request.asset_graph_subset is not None:
        by_partition: dict = {}
        for ap in request.asset_graph_subset.iterate_asset_partitions():
            by_partition.setdefault(ap.partition_key, []).append(ap.asset_key)
        return list(by_partition.items())
    return [(request.partition_key, list(request.asset_selection or request.asset_check_keys or []))]


def shape(run_requests) -> list:
    """Per request, sorted: (partition, sorted asset names, or check names for checks alone); a backfill request is
    ("backfill", its own shape)."""

    def one(request):
        if request.asset_graph_subset is not None:
            return (
                "backfill",
                sorted((p, sorted(k.to_user_string() for k in keys)) for p, keys in _requested(request)),
            )
        [(partition, keys)] = _requested(request)
        return (partition, sorted(k.to_user_string() for k in keys))

    return sorted((one(r) for r in run_requests), key=lambda s: (s[0] or "", str(s[1])))
