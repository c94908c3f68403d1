"""The six stages as Dagster assets, plus the dataset manifest between the per-video stages and training.

Assets only wire: each calls one `ahriuwu_core` function and reports what it measured. Every asset returns a
content-derived data version, so staleness follows the data, and a `code_version` to bump when its logic changes.
"""

from pipeline.assets.common import CODE_VERSIONS, OWNER, video_partitions
from pipeline.assets.evaluation import evaluation
from pipeline.assets.ingest import VideosConfig, dataset_manifest, frames, videos
from pipeline.assets.training import dynamics, latents, tokenizer

__all__ = [
    "CODE_VERSIONS",
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
