"""Telling a dead run from a live one, for the daemon (through the run launcher) and for `make demo` alike.

A run is alive while a process it recorded runs: the run worker (its RUN_START event's pid) or a step process
(each STEP_START's pid), on the host the run was launched from (the run's `ahriuwu/host` tag). A killed run stays
STARTED and keeps its `gpu` pool slot forever otherwise: Dagster frees a step's slot only when the step ends.

- The daemon's run monitoring asks the run launcher (pipeline/launcher.py) and marks a dead run failed; it
  frees a failed run's slots `free_slots_after_run_end_seconds` later (dagster_home/dagster.yaml).
- Every run of the code location's executor (pipeline/executor.py), however started, tags itself with its host
  and, while a step waits for a pool slot, applies the same check and names the run holding the slot.
- `make demo` runs in-process without the daemon: before each GPU stage, `wait_for_pool` marks dead runs failed,
  frees the slots of finished runs none of whose processes is left, then waits, sleeping, for a free slot.
"""

from __future__ import annotations

import os
import socket
import time

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from ahriuwu_core.data.files import process_started

HOST_TAG = "ahriuwu/host"
# A pid whose process started this long after the pid was recorded is a reused one. Generous: /proc's boot time
# is whole seconds and the wall clock may be stepped meanwhile, and failing a live run is far worse than
# noticing a dead one late (a reused pid only delays it until that process ends).
REUSE_MARGIN_S = 60.0


def host_tags() -> dict[str, str]:
    """The tag every run carries so that its pids are only ever checked on the host where they mean something."""
    return {HOST_TAG: socket.gethostname()}


def run_processes(instance: DagsterInstance, run_id: str) -> list[tuple[int, float]]:
    """(pid, when it was recorded) of the run worker and of every step process the run started."""
    out = []
    for kind in (DagsterEventType.RUN_START, DagsterEventType.STEP_START):
        for entry in instance.all_logs(run_id, of_type=kind):
            if entry.dagster_event is not None and entry.dagster_event.pid:
                out.append((entry.dagster_event.pid, entry.timestamp))
    return out


def run_alive(instance: DagsterInstance, run: DagsterRun, count_self: bool = True) -> bool | None:
    """Whether a process of `run` still runs; None when this host cannot tell (launched elsewhere, no pid yet).
    A pid started after it was recorded is a reused one. This process counts as alive unless `count_self` is
    False (for a finished run: its in-process execution here has returned)."""
    if run.tags.get(HOST_TAG) != socket.gethostname():
        return None
    procs = run_processes(instance, run.run_id)
    if not procs:
        return None
    for pid, recorded in procs:
        if pid == os.getpid():
            if count_self:
                return True
            continue
        started = process_started(pid)
        if started is not None and started <= recorded + REUSE_MARGIN_S:
            return True
    return False


def describe_processes(instance: DagsterInstance, run: DagsterRun) -> str:
    pids = sorted({pid for pid, _ in run_processes(instance, run.run_id)})
    return f"process{'es' if len(pids) > 1 else ''} {', '.join(map(str, pids))} on {run.tags.get(HOST_TAG)}"


def reap_dead_runs(instance: DagsterInstance, log=print) -> list[str]:
    """Mark runs in progress with no process left as failed, and free the pool slots of finished runs with no
    process left. Returns the ids of the runs whose slots were freed."""
    for record in instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        run = record.dagster_run
        if run_alive(instance, run) is False:
            message = f"the run's {describe_processes(instance, run)} died (killed?): marked failed"
            instance.report_run_failed(run, message)
            log(f"run {run.run_id}: {message}")
    freed = []
    for run_id in instance.event_log_storage.get_concurrency_run_ids():
        run = instance.get_run_by_id(run_id)
        # A finished run this host cannot judge is left to the daemon (it frees slots 60 s after a run ends).
        if run is None or (run.is_finished and run_alive(instance, run, count_self=False) is False):
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
            log(f"run {run_id}: freed the pool slots it still held ({run.status.value if run else 'deleted'})")
            freed.append(run_id)
    return freed


def slot_holders(info) -> list[tuple[str, str]]:
    """(run id, step key) of every step holding a slot of a pool (its ConcurrencyKeyInfo): those that claimed one,
    and those Dagster assigned one to that have not claimed it yet (a run killed while waiting can hold a slot so)."""
    assigned = [(s.run_id, s.step_key) for s in info.pending_steps if s.assigned_timestamp is not None]
    return sorted({(s.run_id, s.step_key) for s in info.claimed_slots} | set(assigned))


def describe_wait(pool: str, limit: int, holders: list[tuple[str, str]]) -> str:
    """What a step waiting on `pool` is told: the limit and which runs' steps hold the slots."""
    named = ", ".join(f"run {run_id} (step {step_key})" for run_id, step_key in holders)
    return f"waiting for a `{pool}` pool slot ({limit} in all), held by {named}"


def wait_for_pool(instance: DagsterInstance, pool: str, log=print, interval_s: float = 1.0) -> None:
    """Block, sleeping `interval_s` between checks, until `pool` has a free slot, reaping dead runs meanwhile.

    Dagster's in-process executor waits for a slot without sleeping (100% CPU) and with SIGTERM/Ctrl-C only
    recorded, so the demo waits here, where signals act at once, and starts its run once a slot is free."""
    said = False
    while True:
        reap_dead_runs(instance, log)
        info = instance.event_log_storage.get_concurrency_info(pool)
        if info.limit is None or len(slot_holders(info)) < info.limit:
            return
        if not said:
            log(describe_wait(pool, info.limit, slot_holders(info)))
            said = True
        time.sleep(interval_s)
