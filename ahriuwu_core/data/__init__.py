"""Data on disk: where it lives, how it is written and checked, and what it means.

Modules: `layout` (every path under the data root), `files` (atomic writes, run-folder locks, the sweep of dead
writers' leftovers), `checked_store` (zarr stores that refuse missing or damaged chunks), `catalog` (the videos a
source listed), `frames` (video -> 20 fps frames store; its resize and HUD mask in `frame_geometry`, its chunked
writer in `frame_stream`), `sidecar` (actions sidecars), `conventions` (action alignment, action space, HUD
layouts), `split` (train / validation / test by video), `manifest` (the dataset's videos, hashes and split).
"""
