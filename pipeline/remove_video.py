"""Remove a video from the project: `python -m pipeline.remove_video VIDEO_ID [--yes]`.

Deletes the video's dynamic partition from the Dagster instance in DAGSTER_HOME (and its per-video
materialization history where the event log storage can wipe one partition; sqlite cannot), and its files under
the data root (AHRIUWU_DATA_ROOT): catalog entry, `videos/<id>/`, `frames/<id>.zarr`, `latents/<id>.zarr`. The id
goes into `catalog/removed.txt`, so the `new_videos` sensor and `make demo` do not add it back while the source
still offers it; `--restore` undoes that (the next listing adds the partition again; automation fetches it where
its history was wiped, else materialize `videos` and `frames` for it).

The dataset manifest keeps listing the video until `dataset_manifest` is rematerialized (Dagster records no event
for a deleted partition, so the UI does not flag it); training stages reading that manifest fail on the missing
stores. Rematerialize `dataset_manifest`, then the training stages.
"""

from __future__ import annotations

import argparse
import sys

from dagster import DagsterInstance

from ahriuwu_core.data import catalog
from ahriuwu_core.data.layout import DataLayout
from pipeline.assets import frames, latents, video_partitions, videos
from pipeline.resources import resources_from_env

PER_VIDEO_ASSETS = (videos, frames, latents)


def what_exists(instance: DagsterInstance, data_root, video_id: str) -> tuple[bool, list]:
    """(is it a partition, its files that exist); KeyError naming the id when the project knows nothing of it."""
    in_instance = instance.has_dynamic_partition(video_partitions.name, video_id)
    on_disk = [p for p in catalog.video_files(data_root, video_id) if p.exists()]
    if not in_instance and not on_disk:
        known = instance.get_dynamic_partitions(video_partitions.name)
        hint = f"known: {', '.join(known[:20])}{' ...' if len(known) > 20 else ''}" if known else "none known"
        raise KeyError(
            f"unknown video {video_id!r}: not a `videos` partition in {instance.root_directory} and "
            f"nothing for it under the data root {data_root} ({hint})"
        )
    return in_instance, on_disk


def remove(instance: DagsterInstance, data_root, video_id: str, log=print) -> list[str]:
    """Remove `video_id` from the instance and the data root; return a line per thing removed.
    Raises KeyError naming the id when neither the instance nor the data root knows it."""
    in_instance, _ = what_exists(instance, data_root, video_id)
    done = []
    if in_instance:
        history = "its videos/frames/latents history"
        try:  # so a later restore starts from "never materialized", not from records of deleted files
            for asset in PER_VIDEO_ASSETS:
                instance.wipe_asset_partitions(asset.key, [video_id])
        except NotImplementedError:  # sqlite event logs (the default DAGSTER_HOME) cannot wipe one partition
            history = "its run history stays in the event log: this storage cannot wipe single partitions"
        instance.delete_dynamic_partition(video_partitions.name, video_id)
        done.append(f"partition {video_id!r} of `videos` ({history})")
    done += [f"{p}" for p in catalog.remove_video(data_root, video_id)]
    for line in done:
        log(f"removed {line}")
    log(
        f"{video_id!r} is recorded in {DataLayout(data_root).removed_list}: the sensor will not add it back "
        f"(undo: python -m pipeline.remove_video --restore {video_id})."
    )
    log(
        "The dataset manifest still lists it, so it and the training stages (tokenizer, latents, dynamics, "
        "evaluation) are stale (the UI does not flag this: a deleted partition records no event), and training "
        "would fail on the missing stores: rematerialize `dataset_manifest`, then training."
    )
    return done


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.remove_video",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("video_id")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--restore", action="store_true", help="undo a removal: let the source listing add the video again"
    )
    args = parser.parse_args(argv)
    data_root = resources_from_env()["storage"].path
    if args.restore:
        if not catalog.restore_video(data_root, args.video_id):
            print(
                f"video {args.video_id!r} was not removed (not in {DataLayout(data_root).removed_list})",
                file=sys.stderr,
            )
            return 2
        print(
            f"restored {args.video_id!r}: the next source listing (sensor tick or `make demo`) adds its partition "
            f"again. Automation then fetches it if its history was wiped; where the event log kept it (sqlite), "
            f"Dagster still counts it as materialized: materialize `videos` and `frames` for it."
        )
        return 0
    instance = DagsterInstance.get()
    try:
        in_instance, files = what_exists(instance, data_root, args.video_id)
        if not args.yes:
            partition = f"its `videos` partition in {instance.root_directory}" if in_instance else "no partition"
            print(
                f"About to remove video {args.video_id!r}: {partition}; files: {', '.join(map(str, files)) or 'none'}."
            )
            try:
                answer = input("Proceed? [y/N] ")
            except EOFError:
                answer = ""
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing removed (pass --yes to skip this question)")
                return 1
        remove(instance, data_root, args.video_id)
    except (KeyError, ValueError) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    finally:
        instance.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
