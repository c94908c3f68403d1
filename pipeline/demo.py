"""`make demo`: register the configured source's videos and materialize every asset in the Dagster instance.

The runs land in DAGSTER_HOME exactly as if launched from the UI, so `make ui` then shows lineage, metadata and
pictures. One bad video fails its own partition only; training uses the videos that succeeded.
"""
from __future__ import annotations

import argparse
import sys
import time

from dagster import AssetSelection, DagsterInstance, materialize

from ahriuwu_core import catalog
from pipeline.assets import dataset_manifest, dynamics, evaluation, frames, latents, tokenizer, video_partitions, videos
from pipeline.definitions import ALL_ASSETS
from pipeline.resources import resources_from_env
from pipeline.sensors import entry_dict


def register_source(instance: DagsterInstance, resources: dict) -> list[str]:
    """List the source, record it in the catalog, add the partitions (what the sensor does on a tick)."""
    from ahriuwu_core.sources import list_videos

    storage, project = resources["storage"], resources["project"]
    entries = [entry_dict(e) for e in list_videos(project.source_config(), storage.path)]
    catalog.register_videos(storage.path, entries)
    ids = [e["video_id"] for e in entries]
    known = set(instance.get_dynamic_partitions(video_partitions.name))
    instance.add_dynamic_partitions(video_partitions.name, [i for i in ids if i not in known])
    return ids


def _run(selection, instance, resources, partition_key=None, log=print) -> bool:
    keys = AssetSelection.assets(*selection)
    start = time.perf_counter()
    result = materialize(
        ALL_ASSETS, selection=keys, instance=instance, resources=resources, partition_key=partition_key,
        raise_on_error=False, tags={"ahriuwu/launched_by": "make-demo"},
    )
    names = "+".join(a.key.to_user_string() for a in selection)
    where = f"[{partition_key}]" if partition_key else ""
    log(f"{names}{where}: {'ok' if result.success else 'FAILED'} in {time.perf_counter() - start:.1f}s")
    return result.success


def run_all(instance: DagsterInstance, resources: dict, log=print) -> dict[str, bool]:
    """Materialize the whole graph in dependency order; return success per step."""
    outcome = {}
    ids = register_source(instance, resources)
    for vid in ids:
        outcome[f"ingest[{vid}]"] = _run([videos, frames], instance, resources, vid, log)
    outcome["dataset_manifest+tokenizer"] = _run([dataset_manifest, tokenizer], instance, resources, log=log)
    for vid in ids:
        if outcome[f"ingest[{vid}]"]:
            outcome[f"latents[{vid}]"] = _run([latents], instance, resources, vid, log)
    outcome["dynamics+evaluation"] = _run([dynamics, evaluation], instance, resources, log=log)
    return outcome


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    instance = DagsterInstance.get()
    start = time.perf_counter()
    outcome = run_all(instance, resources_from_env())
    failed = [k for k, ok in outcome.items() if not ok]
    print(f"materialized {len(outcome) - len(failed)}/{len(outcome)} steps in {time.perf_counter() - start:.0f}s")
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
