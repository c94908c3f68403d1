"""Listing a source: the entries of a channel, playlist, URL list, file list, folder, the demo or the Atari games,
deduplicated and disambiguated, with the entries it could not use skipped and reported."""

from __future__ import annotations

import hashlib
import itertools
import os
import posixpath
import re
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ahriuwu_core.sources.config import VIDEO_SUFFIXES, SourceConfig, SourceEntry, VideoFetchError
from ahriuwu_core.sources.fetch import local_path
from ahriuwu_core.sources.ytdlp import with_retries, ydl_params


def _file_url(path: Path) -> str:
    return Path(path).resolve().as_uri()


def _local_entries(paths, kind: str) -> list[SourceEntry]:
    # yt-dlp's generic extractor names a file:// URL by the file stem; we use the same id (_disambiguate settles
    # two files with one stem)
    return [SourceEntry(video_id=p.stem, url=_file_url(p), title=p.stem, kind=kind) for p in paths]


def _folder_videos(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise VideoFetchError(f"source folder {folder} does not exist")
    return sorted(
        p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file() and not p.name.startswith(".")
    )


def _filelist_items(path: Path) -> list[str]:
    if not path.is_file():
        raise VideoFetchError(f"file list {path} does not exist")
    items = []
    for line in path.read_text().splitlines():
        line = re.sub(r"(^|\s+)#.*$", "", line).strip()  # '#' comments: whole lines, or after whitespace
        if line:
            items.append(line)
    return items


@dataclass
class Skipped:
    """An entry of the source that was left out of the listing, and why."""

    entry: str  # the file list line, URL or `video_id (url)` as the source gave it
    reason: str


@dataclass
class Listing:
    entries: list[SourceEntry] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def list_videos(cfg: SourceConfig, data_root, log=print) -> list[SourceEntry]:
    """The entries of `list_source`; each skipped entry goes to `log`."""
    listing = list_source(cfg, data_root, log)
    for s in listing.skipped:
        log(f"skipped {s.entry}: {s.reason}")
    return listing.entries


def list_source(cfg: SourceConfig, data_root, log=print) -> Listing:
    """Every video the source offers, without downloading, except those removed from the project on purpose
    (`catalog/removed.txt` under the data root; `python -m pipeline.remove_video`). Channels/playlists use flat
    extraction.

    One bad entry (a missing file, a URL that cannot be listed, an id that cannot name a folder) is skipped and
    reported in `skipped`, so the others are still listed; only when nothing could be listed is it an error.
    The same file or URL listed twice is one video; two files with the same stem get distinct ids."""
    from ahriuwu_core.data.catalog import invalid_id_reason, removed_ids

    removed = removed_ids(data_root)
    listing = _list_source(cfg, Path(data_root), log)
    good, removed_here = [], 0
    for e in _disambiguate(listing.entries, log):
        reason = invalid_id_reason(e.video_id)
        if reason:
            listing.skipped.append(Skipped(f"{e.video_id} ({e.url})", reason))
        elif e.video_id in removed:
            removed_here += 1
        else:
            good.append(e)
    if not good and not removed_here and listing.skipped:  # nothing listable at all: the source itself is broken
        raise VideoFetchError("; ".join(f"{s.entry}: {s.reason}" for s in listing.skipped))
    listing.entries = good
    return listing


def _disambiguate(entries: list[SourceEntry], log) -> list[SourceEntry]:
    """Drop repeats of a URL, and of an id among non-local URLs (a channel may offer a video twice); give a
    local file whose stem an earlier file already took `<stem>-<8 hex of its path>`, the same on every listing
    so long as the earlier file stays listed first."""
    out, by_url, by_id = [], set(), {}
    for e in entries:
        if e.url in by_url:
            continue
        by_url.add(e.url)
        first = by_id.get(e.video_id)
        if first is not None:
            local, first_local = local_path(e.url), local_path(first.url)
            if local is None or first_local is None:
                if e.url != first.url:
                    log(f"{e.url} is video {e.video_id!r} like {first.url}: listed once")
                continue
            new_id = f"{e.video_id}-{hashlib.sha256(str(local).encode()).hexdigest()[:8]}"
            log(f"{local} has the stem of {first_local}: it is video {new_id!r}")
            e = SourceEntry(**{**asdict(e), "video_id": new_id})
        by_id[e.video_id] = e
        out.append(e)
    return out


def _list_source(cfg: SourceConfig, data_root: Path, log) -> Listing:
    if cfg.kind == "demo":
        # Listed without rendering (a sensor tick must stay short); each video is rendered when it is fetched.
        from ahriuwu_core.data.layout import DataLayout
        from ahriuwu_core.demo.video import DemoConfig, demo_video_paths, discard_stale_demo_videos

        demo_dir, demo = DataLayout(data_root).demo_source, cfg.demo if cfg.demo is not None else DemoConfig()
        discard_stale_demo_videos(demo_dir, demo, log)
        return Listing(_local_entries(demo_video_paths(demo_dir, demo), "demo"))
    if cfg.kind == "atari":  # like the demo: listed without recording, recorded when fetched
        from ahriuwu_core.data.layout import DataLayout
        from ahriuwu_core.sources.atari import AtariConfig, atari_video_paths, discard_stale_atari_videos

        atari_dir, atari = DataLayout(data_root).atari_source, cfg.atari if cfg.atari is not None else AtariConfig()
        discard_stale_atari_videos(atari_dir, atari, log)
        return Listing(_local_entries(atari_video_paths(atari_dir, atari), "atari"))
    if cfg.kind == "folder":
        return Listing(_local_entries(_folder_videos(Path(cfg.path)), "folder"))
    if cfg.kind == "filelist":
        base = Path(cfg.path).parent
        listing = Listing()
        for item in _filelist_items(Path(cfg.path)):
            if re.match(r"^[a-z][a-z0-9+.-]*://", item, re.I):
                _list_each([item], cfg, log, "filelist", listing)
                continue
            p = Path(item) if Path(item).is_absolute() else base / item
            if not p.is_file():
                listing.skipped.append(Skipped(item, f"{p} does not exist (file list {cfg.path})"))
                continue
            listing.entries.extend(_local_entries([p.resolve()], "filelist"))
        return listing
    if cfg.kind in ("urls", "channel", "playlist"):
        if not cfg.urls:
            raise ValueError(f"source kind {cfg.kind!r} needs `urls`")
        listing = Listing()
        _list_each(cfg.urls, cfg, log, cfg.kind, listing)
        return listing
    raise ValueError(f"unknown source kind {cfg.kind!r}")


def _list_each(urls, cfg: SourceConfig, log, kind: str, listing: Listing) -> None:
    """List each URL on its own, so one that fails is skipped (with yt-dlp's reason) and the rest still count."""
    for url in dict.fromkeys(urls):
        try:
            listing.entries.extend(_list_urls([url], cfg, log, kind))
        except VideoFetchError as e:
            msg = str(e)
            listing.skipped.append(Skipped(url, msg[len(url) + 2 :] if msg.startswith(f"{url}: ") else msg))


def _generic_id(url: str) -> str:
    """The id yt-dlp's generic extractor gives a direct URL: the unquoted basename without extension."""
    return urllib.parse.unquote(os.path.splitext(posixpath.basename(urllib.parse.urlparse(url).path))[0])


def _list_urls(urls, cfg: SourceConfig, log, kind: str, seen: set | None = None) -> list[SourceEntry]:
    import yt_dlp

    seen = set() if seen is None else seen  # shared with the recursion: a video in two tabs is listed once
    extra = {"extract_flat": "in_playlist", "noplaylist": False}
    if cfg.max_videos:
        extra["playlistend"] = int(cfg.max_videos)
    entries = []
    with yt_dlp.YoutubeDL(ydl_params(cfg, log, **extra)) as ydl:
        for url in urls:
            info = with_retries(url, lambda: ydl.extract_info(url, download=False, process=False), cfg, log)  # noqa: B023
            if info.get("_type") in ("playlist", "multi_video"):
                items = list(itertools.islice(info.get("entries") or [], cfg.max_videos or None))
            else:
                items = [info]
            for item in items:
                if not item or not (item.get("id") or item.get("url")):
                    continue
                if not item.get("id"):  # e.g. RSS feed items: the generic extractor will name them so
                    item = {**item, "id": _generic_id(item["url"])}
                if item.get("_type") == "playlist" or item.get("ie_key") == "YoutubeTab":
                    # a channel page lists its tabs (Videos, Shorts, Live): list each one level down
                    entries.extend(_list_urls([item.get("url") or item["webpage_url"]], cfg, log, kind, seen))
                    continue
                video_url = item.get("webpage_url") or item.get("url") or url
                if item.get("ie_key") == "Youtube" and not video_url.startswith("http"):
                    video_url = f"https://www.youtube.com/watch?v={item['id']}"
                if item["id"] in seen:
                    continue
                seen.add(item["id"])
                entries.append(
                    SourceEntry(
                        video_id=item["id"],
                        url=video_url,
                        title=item.get("title") or "",
                        kind=kind,
                        duration=item.get("duration"),
                        description=item.get("description") or "",
                    )
                )
    return entries
