"""What a source is: its configuration, its entries, and the error a listing or download raises."""

from __future__ import annotations

from dataclasses import dataclass, field

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")


class VideoFetchError(RuntimeError):
    """A listing or download failed; the message names the URL / video id and carries yt-dlp's reason."""


@dataclass
class SourceConfig:
    kind: str = "demo"  # "urls" | "channel" | "playlist" | "folder" | "filelist" | "demo" | "atari"
    urls: list[str] = field(default_factory=list)  # urls / channel / playlist URLs
    path: str = ""  # folder, or the file list (one path or URL per line, '#' comments)
    max_height: int = 720  # video-only format capped at this height
    max_videos: int | None = None  # per channel / playlist listing (newest first on YouTube)
    rate_limit: str | None = None  # download speed cap, yt-dlp syntax: "2M" = 2 MiB/s
    sleep_between_s: float = 0.0  # pause between downloads (polite to YouTube)
    cookies_file: str | None = None  # Netscape cookies.txt, for age-gated / members videos
    retries: int = 5  # yt-dlp's per-request retries, and our retries of transient failures
    backoff_s: float = 2.0  # exponential backoff base between our retries
    archive: bool = True  # yt-dlp download archive: reruns skip finished videos
    max_duration_s: float = 4 * 3600  # longer videos are refused (0: no cap); live streams always are
    demo: object | None = None  # DemoConfig for kind="demo" (None: DemoConfig())
    atari: object | None = None  # AtariConfig for kind="atari" (None: AtariConfig())


@dataclass
class SourceEntry:
    video_id: str
    url: str
    title: str = ""
    kind: str = ""
    duration: float | None = None
    description: str = ""
