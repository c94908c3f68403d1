"""What the Dagster daemon does with the project's sensors and automation conditions, one call at a time, so that
tests can drive it tick by tick on a scratch instance."""

from __future__ import annotations

from collections import Counter

from dagster import AssetKey, DagsterRunStatus, build_sensor_context, evaluate_automation_conditions, materialize


class Daemon:
    """What the daemon does, one call at a time: sensor ticks, automation ticks, launching their runs. Counts every
    (asset, partition) requested by either, the sensor's own run requests included."""

    def __init__(self, instance, resources):
        from pipeline.definitions import defs

        self.instance, self.resources, self.defs = instance, resources, defs
        self.cursor = None
        self.requested: Counter = Counter()

    def _count(self, run_requests):
        for req in run_requests:
            for key in _keys(req):
                self.requested[(key.to_user_string(), req.partition_key)] += 1
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
        """One evaluation of the assets' conditions; returns its run requests, grouped as the daemon groups them."""
        from dagster._core.definitions.automation_tick_evaluation_context import build_run_requests

        result = evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        return self._count(
            build_run_requests(
                entity_subsets=result._requested_subsets,  # noqa: SLF001
                asset_graph=self.defs.resolve_asset_graph(),
                run_tags=None,
                emit_backfills=False,
            )
        )

    def launch(self, run_requests, assets=None) -> list[bool]:
        """Execute the run requests in process (success per run; failures are recorded, not raised). assets: the
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
            for req in run_requests
        ]

    def start_run(self, assets: list[str], partition: str) -> str:
        """A run of `assets` for `partition` that has started and not yet executed them (as launched from the UI)."""
        keys = [AssetKey(a) for a in assets]
        job = self.defs.resolve_implicit_job_def_def_for_assets(keys)
        run = self.instance.create_run_for_job(
            job, asset_selection=frozenset(keys), status=DagsterRunStatus.STARTED, tags={"dagster/partition": partition}
        )
        return run.run_id


def _keys(request) -> list:
    """The assets a run request selects; for a request of checks alone, its checks (an asset's own checks run
    with it)."""
    return list(request.asset_selection or request.asset_check_keys or [])


def shape(run_requests) -> list[tuple[str | None, list[str]]]:
    """(partition, sorted asset names, or check names for checks alone) per run request, sorted."""
    return sorted(
        ((r.partition_key, sorted(k.to_user_string() for k in _keys(r))) for r in run_requests),
        key=lambda s: (s[0] or "", s[1]),
    )
