"""The instance's run launcher (dagster_home/dagster.yaml): Dagster's DefaultRunLauncher plus the worker health
check that run monitoring calls, so the daemon fails a run whose processes were killed (see run_health).

It plugs into the instance, not the code location: the health check's result types exist only in
dagster._core.launcher, so this module alone imports them.
"""

from __future__ import annotations

from dagster import DagsterRun, DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

from pipeline.run_health import describe_processes, host_tags, run_alive


class LocalRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher (run workers are subprocesses of the code server, on this host as under `dg dev`) that
    also answers the daemon's worker health check, so run monitoring fails a run whose processes were killed."""

    def launch_run(self, context) -> None:
        self._instance.add_run_tags(context.dagster_run.run_id, host_tags())
        super().launch_run(context)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        run = self._instance.get_run_by_id(run.run_id) or run  # the tags as now, with the host
        alive = run_alive(self._instance, run)
        if alive is False:
            return CheckRunHealthResult(
                WorkerStatus.FAILED, f"the run's {describe_processes(self._instance, run)} died"
            )
        # Unknown (another host, no pid recorded yet) is left alone: only a run seen dead is failed.
        return CheckRunHealthResult(WorkerStatus.RUNNING, None if alive else "not checked from this host")
