"""The code location's executor: Dagster's default (multiprocess, or in-process by config), plus two things every
run needs however it was started (UI, daemon, `dagster asset materialize`, a script):

- the run is tagged with the host it executes on, so a run killed anywhere can be judged dead (run_health);
- while one of its steps waits for a pool slot, a watcher frees the slots of dead runs and says at INFO level
  which run holds the slot. Dagster itself only records the wait at DEBUG, and never frees a slot that a run
  killed without the daemon still holds.
"""

from __future__ import annotations

import threading

from dagster import Executor, InitExecutorContext, executor, multi_or_in_process_executor

from pipeline.run_health import HOST_TAG, describe_wait, host_tags, reap_dead_runs, slot_holders

POOL_CHECK_INTERVAL_S = 2.0


class _PoolWatch:
    """A thread that, while `run_id` has a step waiting on one of `pools`, reaps dead runs and logs who holds the
    slot (again whenever the holders change)."""

    def __init__(self, instance, run_id: str, pools: set[str], log, interval_s: float = POOL_CHECK_INTERVAL_S):
        self.instance, self.run_id, self.pools, self.log, self.interval_s = instance, run_id, pools, log, interval_s
        self._stop = threading.Event()
        self._said: dict[str, list] = {}

    def check_once(self) -> None:
        storage = self.instance.event_log_storage
        for pool in sorted(self.pools):
            info = storage.get_concurrency_info(pool)
            waiting = sorted(
                s.step_key for s in info.pending_steps if s.run_id == self.run_id and s.assigned_timestamp is None
            )
            if not waiting:
                self._said.pop(pool, None)
                continue
            holders = [h for h in slot_holders(info) if h[0] != self.run_id]
            if holders and self._said.get(pool) != holders:
                self.log(f"step {', '.join(waiting)} {describe_wait(pool, info.limit, holders)}")
                self._said[pool] = holders
            reap_dead_runs(self.instance, self.log)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check_once()
            except Exception as e:  # a watcher must never fail the run it watches
                self.log(f"pool watch: {type(e).__name__}: {e}")

    def __enter__(self):
        self._thread = threading.Thread(target=self._loop, name="pool-watch", daemon=True)
        if self.pools:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


class PoolAwareExecutor(Executor):
    def __init__(self, inner: Executor):
        self._inner = inner

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def execute(self, plan_context, execution_plan):
        instance, run = plan_context.instance, plan_context.dagster_run
        if HOST_TAG not in run.tags:
            instance.add_run_tags(run.run_id, host_tags())
        pools = {step.pool for step in execution_plan.get_steps_to_execute_in_topo_order() if step.pool}
        with _PoolWatch(instance, run.run_id, pools, plan_context.log.info):
            yield from self._inner.execute(plan_context, execution_plan)


def pool_aware(inner, name: str, config: dict | None = None):
    """`inner` (an executor definition) wrapped so that every run tags itself with its host and watches the pools
    its steps wait on. config: `inner`'s fixed config (its schema then takes none in the launchpad)."""

    @executor(
        name=name,
        config_schema=None if config is not None else inner.config_schema,
        requirements=inner.get_requirements if config is None else inner.get_requirements(config),
    )
    def wrapped(init_context):
        if config is not None:
            init_context = InitExecutorContext(
                job=init_context.job, executor_def=inner, executor_config=config, instance=init_context.instance
            )
        return PoolAwareExecutor(inner.executor_creation_fn(init_context))

    return wrapped


# Dagster's default executor (multiprocess unless configured in-process), pool-aware.
pool_aware_executor = pool_aware(multi_or_in_process_executor, "ahriuwu")


def location_executor():
    """The code location's executor: on a Ray cluster when AHRIUWU_RAY_ADDRESS is set (pipeline/ray_cluster.py),
    else Dagster's default on this machine; pool-aware either way."""
    from pipeline.ray_cluster import ray_address, ray_step_executor_config

    address = ray_address()
    if not address:
        return pool_aware_executor
    from dagster_ray import ray_executor

    return pool_aware(ray_executor, "ray", ray_step_executor_config(address))
