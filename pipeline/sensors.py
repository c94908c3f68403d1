"""Automation: a sensor that turns new videos at the source into partitions, and Declarative Automation that
requests the per-video runs (the assets' conditions; one mechanism, so no run is requested twice). Training starts
on demand or from the `weekly_retrain` schedule; what follows a new tokenizer is automated (pipeline/retraining.py).
"""

import hashlib
import json
import os

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from ahriuwu_core.data import catalog
from pipeline.assets import dataset_manifest, dynamics, evaluation, frames, latents, video_partitions, videos
from pipeline.resources import ProjectResource, StorageResource

_STATUS = (
    DefaultSensorStatus.RUNNING if os.environ.get("AHRIUWU_AUTOMATION", "on") == "on" else DefaultSensorStatus.STOPPED
)


@sensor(
    name="new_videos",
    minimum_interval_seconds=int(os.environ.get("AHRIUWU_SENSOR_INTERVAL", "600")),
    default_status=_STATUS,
    description="Lists the configured source and adds one `videos` partition per new video; the assets' "
    "automation conditions then request its fetch and frames. The cursor is the hash of the last listing.",
)
def new_videos_sensor(context: SensorEvaluationContext, storage: StorageResource, project: ProjectResource):
    from ahriuwu_core.sources import entry_dict, list_source

    listing = list_source(project.source_config(), storage.path, log=context.log.info)
    for s in listing.skipped:
        context.log.warning(f"skipped {s.entry}: {s.reason}")
    skipped = (
        f"; skipped {len(listing.skipped)}: " + "; ".join(f"{s.entry}: {s.reason}" for s in listing.skipped)
        if listing.skipped
        else ""
    )
    entries = [entry_dict(e) for e in listing.entries]
    listing_hash = hashlib.sha256(json.dumps(sorted(e["video_id"] for e in entries)).encode()).hexdigest()
    known = set(context.instance.get_dynamic_partitions(video_partitions.name))
    new_ids = list(dict.fromkeys(e["video_id"] for e in entries if e["video_id"] not in known))
    if not new_ids and context.cursor == listing_hash:
        return SkipReason(f"no new videos among {len(entries)} listed{skipped}")
    catalog.register_videos(storage.path, entries, project.setting("source"))
    return SensorResult(
        dynamic_partitions_requests=[video_partitions.build_add_request(new_ids)] if new_ids else [],
        cursor=listing_hash,
    )


# Evaluates the assets' automation conditions on the daemon: the only requester of per-video runs.
automation_sensor = AutomationConditionSensorDefinition(
    name="per_video_automation",
    target=AssetSelection.assets(videos, frames, dataset_manifest, latents),
    default_status=_STATUS,
    minimum_interval_seconds=60,
)

# What follows a new tokenizer or world model (AFTER_NEW_TOKENIZER, AFTER_NEW_WORLD_MODEL), and the freshness checks
# when the manifest changes. Nothing here starts a tokenizer retrain.
training_automation_sensor = AutomationConditionSensorDefinition(
    name="training_automation",
    target=AssetSelection.assets(dynamics, evaluation),
    default_status=_STATUS,
    minimum_interval_seconds=60,
)
