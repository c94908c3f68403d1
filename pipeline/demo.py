"""`make demo`: register the configured source's videos and materialize every asset in the Dagster instance.

The runs land in DAGSTER_HOME exactly as if launched from the UI, so `make ui` then shows lineage, metadata and
pictures. One bad video fails its own partition only; training uses the videos that succeeded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from dagster import AssetSelection, DagsterEventType, DagsterInstance, materialize

from ahriuwu_core.data import catalog
from pipeline.assets import dataset_manifest, dynamics, evaluation, frames, latents, tokenizer, video_partitions, videos
from pipeline.definitions import ALL_ASSETS
from pipeline.ray_cluster import ray_address
from pipeline.resources import resources_from_env
from pipeline.retraining import FRESHNESS_CHECKS
from pipeline.run_health import host_tags, wait_for_pool


def register_source(instance: DagsterInstance, resources: dict, log=print) -> list[str]:
    """List the source, record it in the catalog, add the partitions (what the sensor does on a tick); entries
    the listing skipped go to `log` with their reason."""
    from ahriuwu_core.sources import entry_dict, list_source

    storage, project = resources["storage"], resources["project"]
    listing = list_source(project.source_config(), storage.path, log=log)
    for s in listing.skipped:
        log(f"skipped {s.entry}: {s.reason}")
    entries = [entry_dict(e) for e in listing.entries]
    catalog.register_videos(storage.path, entries, project.setting("source"))
    ids = list(dict.fromkeys(e["video_id"] for e in entries))
    known = set(instance.get_dynamic_partitions(video_partitions.name))
    instance.add_dynamic_partitions(video_partitions.name, [i for i in ids if i not in known])
    return ids


class PeakRSS:
    """Samples this process's resident memory while a step runs (steps run in-process here)."""

    def __init__(self, interval_s: float = 0.05):
        self.interval_s, self.peak_bytes = interval_s, 0
        self._stop = threading.Event()

    @staticmethod
    def current_bytes() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    def _sample(self):
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self.current_bytes())
            self._stop.wait(self.interval_s)

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self.current_bytes())


# Never retried by the daemon: its in-process job does not exist in the code location, and a rerun of the demo
# runs the stage again anyway.
DEMO_TAGS = {"ahriuwu/launched_by": "make-demo", "dagster/max_retries": "0"}


def _run_stage(selection, instance, resources, partition_key=None, log=print, run_config=None) -> bool:
    keys = AssetSelection.assets(*selection)
    for pool in sorted({a.op.pool for a in selection if a.op.pool}):
        wait_for_pool(instance, pool, log)
    start = time.perf_counter()
    with PeakRSS() as rss:
        result = materialize(
            [*ALL_ASSETS, *FRESHNESS_CHECKS],  # every check the UI would run with the selection
            selection=keys,
            instance=instance,
            resources=resources,
            partition_key=partition_key,
            raise_on_error=False,
            tags=DEMO_TAGS | host_tags(),
            run_config=run_config,
        )
    names = "+".join(a.key.to_user_string() for a in selection)
    where = f"[{partition_key}]" if partition_key else ""
    # A failed blocking check fails its step (Dagster raises after recording it), so it stops dependents here
    # exactly as any failure does; name the check so the log says why.
    blocked = [
        f"{e.asset_key.to_user_string()}:{e.check_name}"
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.blocking
    ]
    status = "ok" if result.success else "FAILED" + (f" (blocking check {', '.join(blocked)})" if blocked else "")
    log(f"{names}{where}: {status} in {time.perf_counter() - start:.1f}s, peak RSS {rss.peak_bytes / 2**20:.0f} MiB")
    # Dagster turned SIGTERM/Ctrl-C into a failed step or run, or received one where it only records it (and
    # then dropped it): stop here too.
    if _interrupted(result) or SIGNALS.stop_requested():
        raise KeyboardInterrupt(f"during {names}{where}")
    return result.success


def _run_on_ray(stages, partitions: list, instance, log=print, run_config=None) -> dict:
    """Runs of `stages` (one run per partition, or one run for None), all at once, each started as `dagster asset
    materialize` starts it: the code location's executor then submits its steps to the Ray cluster, and a step
    whose upstream failed in its run does not run. Returns {(stage name, partition): whether its step succeeded}."""
    names = [stage.key.to_user_string() for stage in stages]
    dagster = str(Path(sys.executable).parent / "dagster")
    procs = {}
    start = time.perf_counter()
    try:
        for key in partitions:
            cmd = [dagster, "asset", "materialize", "-m", "pipeline.definitions", "--select", ",".join(names)]
            cmd += ["--partition", key] if key else []
            cmd += ["--config-json", json.dumps(run_config)] if run_config else []
            procs[key] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        done = {}
        for key, proc in procs.items():
            output, _ = proc.communicate()
            where = f"[{key}]" if key else ""
            # The steps ran on the cluster: their outcome is in the run's event log, not in this output.
            run_id = re.search(r" - ([0-9a-f-]{36}) - \d+ - RUN_START", output)
            succeeded = {
                e.step_key
                for e in (instance.all_logs(run_id.group(1), of_type=DagsterEventType.STEP_SUCCESS) if run_id else [])
            }
            for name in names:
                done[(name, key)] = name in succeeded
                status = "ok" if done[(name, key)] else "FAILED"
                log(f"{name}{where}: {status} in {time.perf_counter() - start:.1f}s (on the Ray cluster)")
            if proc.returncode != 0:
                log(output[-3000:])
        return done
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait()


def _run_all_on_ray(ids: list, instance, log=print, run_config=None) -> dict[str, bool]:
    """run_all on a Ray cluster: each video's fetch and frames in one run, the videos at once; the manifest and
    tokenizer in one run; the latents at once; the world model and its evaluation in one run (fewer runs: a
    run's start costs more than its step here)."""
    outcome = {}

    def record(done):
        outcome.update({f"{name}[{key}]" if key else name: ok for (name, key), ok in done.items()})
        return all(done.values())

    record(_run_on_ray([videos, frames], ids, instance, log, run_config))
    if record(_run_on_ray([dataset_manifest, tokenizer], [None], instance, log, run_config)):
        record(_run_on_ray([latents], [v for v in ids if outcome.get(f"frames[{v}]")], instance, log, run_config))
        record(_run_on_ray([dynamics, evaluation], [None], instance, log, run_config))
    for name in ("tokenizer", "dynamics", "evaluation"):
        outcome.setdefault(name, False)
    return outcome


def _interrupted(result) -> bool:
    for event in result.all_events:
        error = (
            getattr(event.event_specific_data, "error", None) if event.is_step_failure or event.is_run_failure else None
        )
        if error is not None and error.cls_name in ("DagsterExecutionInterruptedError", "KeyboardInterrupt"):
            return True
    return False


def run_all(instance: DagsterInstance, resources: dict, log=print, run_config=None) -> dict[str, bool]:
    """Materialize the whole graph in dependency order, one stage per run (on a Ray cluster, see _run_all_on_ray);
    return success per step. run_config: the same launchpad config for every run (e.g. a resource override)."""
    outcome = {}

    def run(selection, partition_key=None) -> bool:
        return _run_stage(selection, instance, resources, partition_key, log, run_config)

    start = time.perf_counter()
    ids = register_source(instance, resources, log)
    log(
        f"source listed ({len(ids)} videos; the demo source renders its videos on first listing) in "
        f"{time.perf_counter() - start:.1f}s"
    )

    if ray_address():
        return _run_all_on_ray(ids, instance, log, run_config)
    for vid in ids:
        outcome[f"videos[{vid}]"] = run([videos], vid)
        if outcome[f"videos[{vid}]"]:
            outcome[f"frames[{vid}]"] = run([frames], vid)
    failed = None  # the first failed shared stage: what depends on it is not run (and counts as failed)

    def shared(stage):
        nonlocal failed
        name = stage.key.to_user_string()
        if failed:
            log(f"{name}: skipped, upstream `{failed}` failed")
            outcome[name] = False
            return
        outcome[name] = run([stage])
        failed = None if outcome[name] else name

    for stage in (dataset_manifest, tokenizer):
        shared(stage)
    if not failed:
        for vid in ids:
            if outcome.get(f"frames[{vid}]"):
                outcome[f"latents[{vid}]"] = run([latents], vid)
    for stage in (dynamics, evaluation):
        shared(stage)
    return outcome


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


class SignalLog:
    """Every SIGTERM / SIGINT this process receives, through the signal wakeup fd: Python writes each signal's
    number there whatever handler is installed, so it also sees those Dagster's run catches and drops (it swaps
    the handlers while a run executes, and forgets an interrupt no step acted on when the run ends)."""

    def __init__(self):
        self._read = None

    def start(self) -> None:
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.set_blocking(write, False)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        self._read = read

    def stop_requested(self) -> bool:
        if self._read is None:
            return False
        try:
            received = os.read(self._read, 4096)
        except BlockingIOError:
            return False
        return any(n in (signal.SIGTERM, signal.SIGINT) for n in received)


SIGNALS = SignalLog()


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    # SIGTERM acts as Ctrl-C (as Dagster also sets it once a run ends): between runs (waiting for a pool slot,
    # say) it stops the demo at once; during a run Dagster turns either into a failed step or run, and the demo
    # stops after that run.
    signal.signal(signal.SIGTERM, _interrupt)
    # Dagster maps SIGTERM to SIGINT's handler after each run. A process started in the background without job
    # control inherits an ignored SIGINT, which would make every later SIGTERM ignored too: take Ctrl-C back.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    SIGNALS.start()
    instance = DagsterInstance.get()
    start = time.perf_counter()
    try:
        outcome = run_all(instance, resources_from_env())
    except KeyboardInterrupt as e:
        print(f"interrupted{f' {e}' if str(e) else ''} after {time.perf_counter() - start:.0f}s", file=sys.stderr)
        return 130
    failed = [k for k, ok in outcome.items() if not ok]
    print(f"materialized {len(outcome) - len(failed)}/{len(outcome)} steps in {time.perf_counter() - start:.0f}s")
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
