"""The Dagster code location (see workspace.yaml)."""

from dagster import Definitions

from pipeline.assets import dataset_manifest, dynamics, evaluation, frames, latents, tokenizer, videos
from pipeline.executor import location_executor
from pipeline.resources import resources_from_env
from pipeline.retraining import FRESHNESS_CHECKS, weekly_retrain
from pipeline.sensors import automation_sensor, new_videos_sensor, training_automation_sensor

ALL_ASSETS = [videos, frames, dataset_manifest, tokenizer, latents, dynamics, evaluation]

defs = Definitions(
    assets=ALL_ASSETS,
    asset_checks=FRESHNESS_CHECKS,
    schedules=[weekly_retrain],
    sensors=[new_videos_sensor, automation_sensor, training_automation_sensor],
    resources=resources_from_env(),
    executor=location_executor(),
)
