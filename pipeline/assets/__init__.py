"""The six stages as Dagster assets, plus the dataset manifest between the per-video stages and training.

Assets only wire: each calls one `ahriuwu_core` function and reports what it measured. Every asset returns a
content-derived data version, so staleness follows the data, and has a code version derived from the library
source it runs and the settings it reads (pipeline/code_versions.py).
"""

from pipeline.assets.common import OWNER, video_partitions
from pipeline.assets.evaluation import evaluation
from pipeline.assets.ingest import VideosConfig, dataset_manifest, frames, videos
from pipeline.assets.training import dynamics, latents, tokenizer

__all__ = [
    "OWNER",
    "video_partitions",
    "VideosConfig",
    "videos",
    "frames",
    "dataset_manifest",
    "tokenizer",
    "latents",
    "dynamics",
    "evaluation",
]
