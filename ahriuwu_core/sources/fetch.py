"""Downloading one entry through yt-dlp (local files as file:// URLs) into `<videos>/<video_id>/`, atomically."""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse
import urllib.request
from dataclasses import asdict
from pathlib import Path

from ahriuwu_core.data.conventions import SIDECAR_SUFFIXES, fetched_sidecar_name
from ahriuwu_core.data.files import atomic_path
from ahriuwu_core.data.manifest import file_sha256
from ahriuwu_core.sources.config import SourceConfig, VideoFetchError
from ahriuwu_core.sources.metadata import parse_replay_metadata
from ahriuwu_core.sources.ytdlp import disk_full, with_retries, ydl_params


def _entry_fields(entry) -> tuple[str, str, str, str, str]:
    e = entry if isinstance(entry, dict) else asdict(entry)
    return e["video_id"], e["url"], e.get("kind") or "", e.get("title") or "", e.get("description") or ""


def _archive_has(archive: Path, video_id: str) -> bool:
    if not archive.exists():
        return False
    return any(line.split()[-1:] == [video_id] for line in archive.read_text().splitlines())


def _probe(path: Path) -> dict:
    """Size, fps and duration from the file itself (the generic extractor knows none of them)."""
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                return {}
            s = c.streams.video[0]
            duration = float(s.duration * s.time_base) if s.duration else (c.duration or 0) / 1e6 or None
            return {
                "width": s.codec_context.width,
                "height": s.codec_context.height,
                "fps": float(s.average_rate) if s.average_rate else None,
                "duration": duration,
            }
    except Exception:  # frames.py reports unreadable videos with its own clear error
        return {}


def local_path(url: str) -> Path | None:
    if not url.startswith("file://"):
        return None
    return Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))


def _local_sidecar(url: str) -> Path | None:
    """`<stem>.actions.json` or `<stem>.actions.jsonl` beside a local video (the first that exists)."""
    path = local_path(url)
    if path is None:
        return None
    for suffix in SIDECAR_SUFFIXES:
        sidecar = path.with_name(path.stem + suffix)
        if sidecar.is_file():
            return sidecar
    return None


def fetch_video(entry, out_dir, cfg: SourceConfig, log=print, refetch: bool = False) -> dict:
    """Download one entry (SourceEntry or its dict) into `<out_dir>/<video_id>/` and return its metadata
    (meta.json's fields plus `sha256` of the video file and `skipped` when it was already there).
    refetch: download again even if it is there (e.g. the source file was fixed); the old folder stays in place
    until the new download is complete, so a failed refetch keeps it."""
    import yt_dlp

    video_id, url, kind, listed_title, listed_description = _entry_fields(entry)
    out_dir = Path(out_dir)
    final = out_dir / video_id
    archive = out_dir / "download_archive.txt"
    if (final / "meta.json").exists() and not refetch:  # complete: the folder only appears by an atomic rename
        meta = json.loads((final / "meta.json").read_text())
        return {**meta, "skipped": True}
    local = local_path(url)
    if cfg.kind == "demo" and kind == "demo" and local is not None:  # the demo is rendered on first fetch
        from ahriuwu_core.demo.video import DemoConfig, ensure_demo_video

        ensure_demo_video(local, cfg.demo if cfg.demo is not None else DemoConfig(), log)
    if cfg.kind == "atari" and kind == "atari" and local is not None:  # recorded on first fetch, like the demo
        from ahriuwu_core.sources.atari import AtariConfig, ensure_atari_video

        ensure_atari_video(local, cfg.atari if cfg.atari is not None else AtariConfig(), log)
    if local is not None and local.is_file() and local.stat().st_size == 0:  # yt-dlp's words: "no data blocks"
        raise VideoFetchError(f"video {video_id} ({url}): {local} is an empty file (0 bytes)")
    try:
        with atomic_path(final) as tmp:
            tmp.mkdir()

            def download(use_archive: bool):
                extra = {"outtmpl": str(tmp / "video.%(ext)s")}
                if use_archive:
                    extra["download_archive"] = str(archive)
                with yt_dlp.YoutubeDL(ydl_params(cfg, log, **extra)) as ydl:
                    info = ydl.extract_info(url, download=True)
                    return ydl.sanitize_info(info)

            what = f"video {video_id} ({url})"
            info = with_retries(what, lambda: download(cfg.archive and not refetch), cfg, log, out=final)
            files = [p for p in tmp.glob("video.*") if not p.name.endswith((".part", ".ytdl"))]
            if not files and cfg.archive:
                # the archive lists it but its folder is gone (deleted on purpose): download again
                info = with_retries(what, lambda: download(False), cfg, log, out=final)
                files = [p for p in tmp.glob("video.*") if not p.name.endswith((".part", ".ytdl"))]
            if not files and info is not None and info.get("is_live"):
                raise VideoFetchError(f"{what}: a live stream; only finished videos are fetched")
            if (
                not files
                and info is not None
                and cfg.max_duration_s
                and (info.get("duration") or 0) > cfg.max_duration_s
            ):
                raise VideoFetchError(
                    f"{what}: {info['duration']:.0f} s long, over the maximum duration "
                    f"max_duration_s={cfg.max_duration_s:g}"
                )
            if not files or info is None:
                raise VideoFetchError(f"{what}: yt-dlp finished without writing a video file")
            video = files[0]
            if info.get("id") and info["id"] != video_id:
                log(f"{what}: yt-dlp calls it {info['id']!r}; keeping the catalog id {video_id!r}")
            probed = _probe(video)
            if cfg.max_duration_s and (probed.get("duration") or 0) > cfg.max_duration_s:
                raise VideoFetchError(
                    f"{what}: {probed['duration']:.0f} s long, over the maximum duration "
                    f"max_duration_s={cfg.max_duration_s:g}"
                )
            # a direct file's info has no real title (the generic extractor uses the id): keep the listing's
            title = info.get("title") if info.get("title") not in (None, "", video_id) else (listed_title or video_id)
            description = info.get("description") or listed_description
            parsed = parse_replay_metadata(title, description)
            meta = {
                "video_id": video_id,
                "url": url,
                "kind": kind,
                "title": title,
                "description": (description or "")[:1000],
                "uploader": info.get("uploader") or info.get("channel"),
                "upload_date": info.get("upload_date"),
                "duration": info.get("duration") or probed.get("duration"),
                "fps": info.get("fps") or probed.get("fps"),
                "width": info.get("width") or probed.get("width"),
                "height": info.get("height") or probed.get("height"),
                "ext": video.suffix.lstrip("."),
                "format_id": info.get("format_id"),
                "vcodec": info.get("vcodec"),
                **parsed,
                "sha256": file_sha256(video),
                "bytes": video.stat().st_size,
                "has_actions": False,
            }
            (tmp / "info.json").write_text(json.dumps(info, indent=1, default=str))
            sidecar = _local_sidecar(url)
            if sidecar is not None:
                shutil.copyfile(sidecar, tmp / fetched_sidecar_name(sidecar.name))
                meta["has_actions"] = True
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    except OSError as e:  # writing info.json / meta.json / the sidecar copy
        if disk_full(e):
            raise VideoFetchError(f"video {video_id} ({url}): no space left on device writing {final} ({e})") from e
        raise
    if cfg.archive and not _archive_has(archive, video_id):
        # yt-dlp records the extractor's id; record the catalog id too (the same for every source we list)
        with open(archive, "a") as f:
            f.write(f"{(info.get('extractor_key') or 'generic').lower()} {video_id}\n")
    if cfg.sleep_between_s:
        time.sleep(cfg.sleep_between_s)
    return {**meta, "skipped": False}


def entry_dict(entry) -> dict:
    return asdict(entry) if not isinstance(entry, dict) else dict(entry)
