"""Production storage for real: a PostgreSQL server from the system's package on 127.0.0.1, the project's
`dagster_home/dagster.postgres.yaml` pointed at it, and several video partitions ingested by concurrent runs, each
with the multiprocess executor (so run workers and step processes write to the database at the same time)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    build_sensor_context,
    define_asset_job,
    multiprocess_executor,
)

from ahriuwu_core.testing import media
from tests._instance import ROOT, scratch_project
from tests._servers import free_port

VIDEO_IDS = ["clip_a", "clip_b", "clip_c"]


def _pg_bin() -> Path:
    """The server binaries: Debian keeps them under /usr/lib/postgresql/<version>/bin, off PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    initdb = found[-1] if found else (Path(shutil.which("initdb")).resolve() if shutil.which("initdb") else None)
    if initdb is None:
        raise RuntimeError(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: run `make system-deps` "
            "(Debian package `postgresql`)"
        )
    return initdb.parent


@dataclass
class Server:
    host: str
    port: int
    user: str
    password: str
    db: str

    @property
    def env(self) -> dict:
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_DB": self.db,
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
        }

    def connect(self):
        import psycopg2

        return psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password, dbname=self.db)


@pytest.fixture
def postgres():
    """A throwaway cluster (initdb), served on 127.0.0.1 with password auth, stopped and deleted afterwards. The
    server refuses to run as root, so as root it runs as the package's `postgres` user."""
    import psycopg2

    bin_dir = _pg_bin()
    workdir = Path(tempfile.mkdtemp(prefix="ahriuwu-pg-"))  # pytest's tmp_path is private to root
    as_user = []
    if os.geteuid() == 0:
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(workdir, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    server = Server("127.0.0.1", free_port(), "dagster", "s3cret", "ahriuwu")
    (workdir / "pw").write_text(server.password)
    if as_user:
        os.chown(workdir / "pw", pw.pw_uid, pw.pw_gid)
    data = workdir / "data"

    def pg(*args, timeout=60):
        done = subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"{args[0]} failed: {done.stdout}{done.stderr}"

    pg(
        str(bin_dir / "initdb"),
        "-D",
        str(data),
        "-U",
        server.user,
        f"--pwfile={workdir / 'pw'}",
        "--auth=scram-sha-256",
        "--no-sync",
        "-E",
        "UTF8",
    )
    # -F: no fsync (a scratch cluster); -k: the Unix socket in the scratch folder, not /var/run/postgresql
    pg(
        str(bin_dir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(workdir / "server.log"),
        "-w",
        "-t",
        "60",
        "-o",
        f"-F -k {workdir} -h {server.host} -p {server.port}",
        "start",
    )
    try:
        conn = psycopg2.connect(
            host=server.host, port=server.port, user=server.user, password=server.password, dbname="postgres"
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {server.db}")
        conn.close()
        yield server
    finally:
        pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(workdir, ignore_errors=True)


# A run worker: the ingest job for one partition (argv[1]) on the instance in DAGSTER_HOME; prints what it saw.
RUN_WORKER = """
import collections, json, sys
from dagster import DagsterInstance, execute_job, reconstructable
from tests.test_postgres import ingest_job
with DagsterInstance.get() as instance:
    with execute_job(reconstructable(ingest_job), instance, tags={"dagster/partition": sys.argv[1]}) as done:
        events = collections.Counter(e.event_type_value for e in done.all_events)
        print(json.dumps({"run_id": done.run_id, "success": done.success, "events": events}))
"""


def ingest_job():
    """`videos` then `frames` of one partition, each step in its own process (the multiprocess executor)."""
    from pipeline.definitions import ALL_ASSETS
    from pipeline.resources import resources_from_env

    job = define_asset_job("ingest", selection=["videos", "frames"], executor_def=multiprocess_executor)
    return Definitions(assets=ALL_ASSETS, jobs=[job], resources=resources_from_env()).resolve_job_def("ingest")


def test_the_postgres_example_differs_from_the_default_only_in_storage():
    import yaml

    default = yaml.safe_load((ROOT / "dagster_home" / "dagster.yaml").read_text())
    example = yaml.safe_load((ROOT / "dagster_home" / "dagster.postgres.yaml").read_text())
    assert list(example.pop("storage")) == ["postgres"] and list(default.pop("storage")) == ["sqlite"]
    assert example == default


def test_concurrent_partition_runs_are_all_recorded_in_postgres(postgres, tmp_path, monkeypatch):
    src = tmp_path / "source"
    for seed, video_id in enumerate(VIDEO_IDS):
        media.make_clip(src / f"{video_id}.mp4", seconds=1, width=96, height=64, seed=seed)
    home, _ = scratch_project(tmp_path, src, monkeypatch)
    shutil.copy(ROOT / "dagster_home" / "dagster.postgres.yaml", home / "dagster.yaml")
    for k, v in postgres.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")

    from pipeline.resources import resources_from_env
    from pipeline.sensors import new_videos_sensor

    with DagsterInstance.get() as instance:
        # The instance really is Postgres-backed: runs, events and schedules.
        assert {
            type(s).__name__ for s in (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
        } == {"PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage"}
        resources = resources_from_env()
        result = new_videos_sensor(
            build_sensor_context(instance=instance, resources={k: resources[k] for k in ("storage", "project")})
        )
        for req in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        assert sorted(instance.get_dynamic_partitions("videos")) == VIDEO_IDS

        # One run worker process per partition, started together, as the run launcher would.
        start = time.perf_counter()
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", RUN_WORKER, video_id],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for video_id in VIDEO_IDS
        ]
        outcomes = []
        for worker in workers:
            out, err = worker.communicate(timeout=240)
            assert worker.returncode == 0, err[-3000:]
            outcomes.append(json.loads(out.strip().splitlines()[-1]))
        print(f"{len(VIDEO_IDS)} concurrent runs: {time.perf_counter() - start:.1f} s")
        assert all(o["success"] for o in outcomes), outcomes

        records = instance.get_run_records()
        assert len(records) == len(VIDEO_IDS)
        assert {r.dagster_run.status for r in records} == {DagsterRunStatus.SUCCESS}
        assert sorted(r.dagster_run.tags["dagster/partition"] for r in records) == VIDEO_IDS
        # They ran at the same time: every run started before any finished.
        assert max(r.start_time for r in records) < min(r.end_time for r in records)

        for outcome in outcomes:
            run_id, seen = outcome["run_id"], Counter(outcome["events"])
            stored = Counter(e.dagster_event.event_type_value for e in instance.all_logs(run_id) if e.is_dagster_event)
            # Every event the run worker saw is in the database, its step processes' included (the database also
            # holds what was logged when the run was created: the planned materializations and checks).
            assert not seen - stored, (run_id, seen - stored)
            assert stored[DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value] == 2
            assert stored[DagsterEventType.STEP_WORKER_STARTED.value] == 2  # the multiprocess executor
            for event in ("STEP_START", "STEP_SUCCESS", "ASSET_MATERIALIZATION", "ASSET_CHECK_EVALUATION"):
                assert stored[event] == 2, (event, stored)
            assert stored[DagsterEventType.RUN_SUCCESS.value] == 1

        for key in ("videos", "frames"):
            mats = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(key)), limit=100).records
            assert sorted(m.partition_key for m in mats) == VIDEO_IDS, key

    # And straight from the server, not through Dagster's reader.
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT status, count(*) FROM runs GROUP BY status")
        assert cur.fetchall() == [("SUCCESS", len(VIDEO_IDS))]
        cur.execute(
            "SELECT asset_key, partition, count(*) FROM event_logs WHERE dagster_event_type = "
            "'ASSET_MATERIALIZATION' GROUP BY asset_key, partition ORDER BY asset_key, partition"
        )
        rows = cur.fetchall()
    assert [(AssetKey.from_db_string(k).to_user_string(), p, n) for k, p, n in rows] == [
        (key, v, 1) for key in ("frames", "videos") for v in VIDEO_IDS
    ]
