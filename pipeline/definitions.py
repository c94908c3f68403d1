"""The Dagster code location (see workspace.yaml)."""
from dagster import Definitions

from pipeline.assets import dataset_manifest, dynamics, evaluation, frames, latents, tokenizer, videos
from pipeline.resources import resources_from_env
from pipeline.sensors import automation_sensor, new_videos_sensor

ALL_ASSETS = [videos, frames, dataset_manifest, tokenizer, latents, dynamics, evaluation]

defs = Definitions(
    assets=ALL_ASSETS,
    sensors=[new_videos_sensor, automation_sensor],
    resources=resources_from_env(),
)
