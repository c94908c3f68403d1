"""Where everything lives under the data root. Nothing else spells a path under it.

<root>/demo_source/           the built-in demo's rendered videos (the `demo` source)
<root>/atari_source/          the built-in Atari games' recorded videos (the `atari` source)
<root>/catalog/<id>.json      what the listing found for each video; catalog/removed.txt
<root>/videos/<id>/           a fetched video, its metadata and actions sidecar
<root>/frames/<id>.zarr       decoded 20 fps uint8 frames, actions, HUD mask
<root>/manifest.json          the dataset: every video's content hash and the split
<root>/tokenizer/tokenizer.pt the published tokenizer; tokenizer/runs/<key>/ its training runs
<root>/latents/<id>.zarr      each video's frames encoded by the published tokenizer
<root>/dynamics/dynamics.pt   the published world model; dynamics/runs/<key>/ its training runs
<root>/reports/<run>/         each evaluation's report, metrics and pictures
<root>/tmp/                   running processes' scratch (Dagster Pipes session files); swept of dead ones'
<root>/locks/<host>/          one lock file per GPU of that host, held by the step using it (devices.py)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataLayout:
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def demo_source(self) -> Path:
        return self.root / "demo_source"

    @property
    def atari_source(self) -> Path:
        return self.root / "atari_source"

    @property
    def catalog_dir(self) -> Path:
        return self.root / "catalog"

    def catalog_entry(self, video_id: str) -> Path:
        return self.catalog_dir / f"{video_id}.json"

    @property
    def removed_list(self) -> Path:
        return self.catalog_dir / "removed.txt"

    @property
    def videos_dir(self) -> Path:
        return self.root / "videos"

    def video_dir(self, video_id: str) -> Path:
        return self.videos_dir / video_id

    def frames_store(self, video_id: str) -> Path:
        return self.root / "frames" / f"{video_id}.zarr"

    def latents_store(self, video_id: str) -> Path:
        return self.root / "latents" / f"{video_id}.zarr"

    def store(self, kind: str, video_id: str) -> Path:
        """The `kind` ("frames" or "latents") store of a video."""
        if kind not in ("frames", "latents"):
            raise ValueError(f"DataLayout.store: kind must be 'frames' or 'latents', got {kind!r}")
        return self.frames_store(video_id) if kind == "frames" else self.latents_store(video_id)

    def per_video_outputs(self, video_id: str) -> list[Path]:
        """Everything the per-video stages write for a video (what removing it deletes)."""
        return [self.video_dir(video_id), self.frames_store(video_id), self.latents_store(video_id)]

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    def stage_dir(self, stage: str) -> Path:
        """A training stage's folder: "tokenizer" or "dynamics"."""
        if stage not in ("tokenizer", "dynamics"):
            raise ValueError(f"DataLayout: no training stage {stage!r}")
        return self.root / stage

    def checkpoint(self, stage: str) -> Path:
        """The published checkpoint of a training stage."""
        return self.stage_dir(stage) / f"{stage}.pt"

    def run_dir(self, stage: str, key: str) -> Path:
        """A training run's folder (resume checkpoint, logs, its own copy of the output)."""
        return self.stage_dir(stage) / "runs" / key

    @property
    def tokenizer_checkpoint(self) -> Path:
        return self.checkpoint("tokenizer")

    @property
    def dynamics_checkpoint(self) -> Path:
        return self.checkpoint("dynamics")

    def report_dir(self, run_name: str) -> Path:
        return self.root / "reports" / run_name

    @property
    def tmp_dir(self) -> Path:
        """Scratch of running processes, each entry named with its pid (files.temp_path) so that files.sweep
        removes what a killed one left."""
        return self.root / "tmp"

    def device_locks(self, host: str) -> Path:
        """The GPU lock files of one host: GPU indices are per machine, and the data root may be shared."""
        if not host or "/" in host or host in (".", ".."):
            raise ValueError(f"DataLayout.device_locks: {host!r} is not a host name")
        return self.root / "locks" / host
