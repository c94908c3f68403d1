"""Video sources: YouTube channels / playlists / URL lists through yt-dlp's Python API, local folders, file
lists, the built-in demo game and the built-in Atari games (`atari`, recorded with ale-py). Every kind downloads
through yt-dlp (local files as file:// URLs), so the demo and the Atari games take exactly the path a real video
takes.

Download layout (design contract): `<videos>/<video_id>/video.<ext>`, `info.json` (yt-dlp's info dict,
sanitized), `meta.json` (parsed facts), `actions.json` (copied from a `<stem>.actions.json` sidecar beside a
local source). A video is downloaded into a temp folder beside its final one and renamed when complete, so the
final folder only exists once everything is in it. yt-dlp's download archive (`<videos>/download_archive.txt`)
records finished videos, so reruns (and plain yt-dlp runs over the same channel) skip them.
"""

from ahriuwu_core.sources.config import VIDEO_SUFFIXES, SourceConfig, SourceEntry, VideoFetchError
from ahriuwu_core.sources.fetch import entry_dict, fetch_video
from ahriuwu_core.sources.listing import Listing, Skipped, list_source, list_videos
from ahriuwu_core.sources.metadata import parse_replay_metadata
from ahriuwu_core.sources.ytdlp import PREFERRED_FPS, disk_full, format_selector

__all__ = [
    "VIDEO_SUFFIXES",
    "SourceConfig",
    "SourceEntry",
    "VideoFetchError",
    "entry_dict",
    "fetch_video",
    "Listing",
    "Skipped",
    "list_source",
    "list_videos",
    "parse_replay_metadata",
    "PREFERRED_FPS",
    "disk_full",
    "format_selector",
]
