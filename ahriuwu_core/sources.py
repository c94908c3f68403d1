"""Video sources: YouTube channels / playlists / URL lists through yt-dlp's Python API, local folders, file
lists and the built-in demo game. Every kind downloads through yt-dlp (local files as file:// URLs), so the demo
takes exactly the path a real video takes.

Download layout (design contract): `<videos>/<video_id>/video.<ext>`, `info.json` (yt-dlp's info dict,
sanitized), `meta.json` (parsed facts), `actions.json` (copied from a `<stem>.actions.json` sidecar beside a
local source). A video is downloaded into a temp folder beside its final one and renamed when complete, so the
final folder only exists once everything is in it. yt-dlp's download archive (`<videos>/download_archive.txt`)
records finished videos, so reruns (and plain yt-dlp runs over the same channel) skip them.
"""
from __future__ import annotations

import errno
import hashlib
import itertools
import json
import os
import posixpath
import re
import shutil
import time
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ahriuwu_core.conventions import SIDECAR_SUFFIXES, fetched_sidecar_name
from ahriuwu_core.files import atomic_path
from ahriuwu_core.manifest import file_sha256

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")
# permanent failures: retrying won't help (the first group is yt-dlp's wording for YouTube, then HTTP codes)
_PERMANENT = re.compile(r"unavailable|private video|removed|copyright|not available|members[- ]only|"
                        r"sign in to confirm your age|unsupported url|HTTP Error (400|401|403|404|410)|"
                        r"no such file|is not a valid url|no video formats", re.I)


class VideoFetchError(RuntimeError):
    """A listing or download failed; the message names the URL / video id and carries yt-dlp's reason."""


@dataclass
class SourceConfig:
    kind: str = "demo"                  # "urls" | "channel" | "playlist" | "folder" | "filelist" | "demo"
    urls: list[str] = field(default_factory=list)   # urls / channel / playlist URLs
    path: str = ""                      # folder, or the file list (one path or URL per line, '#' comments)
    max_height: int = 720               # video-only format capped at this height
    max_videos: int | None = None       # per channel / playlist listing (newest first on YouTube)
    rate_limit: str | None = None       # download speed cap, yt-dlp syntax: "2M" = 2 MiB/s
    sleep_between_s: float = 0.0        # pause between downloads (polite to YouTube)
    cookies_file: str | None = None     # Netscape cookies.txt, for age-gated / members videos
    retries: int = 5                    # yt-dlp's per-request retries, and our retries of transient failures
    backoff_s: float = 2.0              # exponential backoff base between our retries
    archive: bool = True                # yt-dlp download archive: reruns skip finished videos
    max_duration_s: float = 4 * 3600    # longer videos are refused (0: no cap); live streams always are
    demo: object | None = None          # DemoConfig for kind="demo" (None: DemoConfig())


@dataclass
class SourceEntry:
    video_id: str
    url: str
    title: str = ""
    kind: str = ""
    duration: float | None = None
    description: str = ""


# ---------------------------------------------------------------------------------------------------------------
# metadata from titles and descriptions

_TIERS = [  # longest first so "grandmaster" is not read as "master"
    ("grandmaster", r"grand\s*master|\bgm\b"), ("challenger", r"challenger"), ("master", r"master"),
    ("diamond", r"diamond"), ("emerald", r"emerald"), ("platinum", r"platinum|plat"), ("gold", r"gold"),
    ("silver", r"silver"), ("bronze", r"bronze"), ("iron", r"iron"),
]
_ROLES = {"top": "top", "jungle": "jungle", "jgl": "jungle", "jg": "jungle", "mid": "mid", "middle": "mid",
          "adc": "bot", "bot": "bot", "bottom": "bot", "sup": "support", "supp": "support", "support": "support",
          "utility": "support"}
_GAME_TAG = re.compile(r"\b([A-Z]{2,4}\d?)-(\d{6,})-(" + "|".join(_ROLES) + r")-(RED|BLUE)\b", re.I)
_PATCH = re.compile(r"\bpatch\s*v?(\d{1,2}\.(?:S\d\.)?\d{1,2})\b|\b((?:1[0-9]|2[0-9])\.(?:S\d\.)?\d{1,2})\b(?!\.\d)",
                    re.I)
_SIDE = re.compile(r"\b(blue|red)\s*side\b", re.I)


def parse_replay_metadata(title: str | None, description: str | None) -> dict:
    """Facts the replay channels put in titles/descriptions: elo tier, patch, side, role, region, game id.

    The domisumReplay-Garen channel ends descriptions with a game tag like `EUW-7646979958-TOP-RED`
    (region, game id, role, side); titles often name the tier ("Challenger", "plat") and a patch ("14.23").
    Missing facts are None."""
    title, description = title or "", description or ""
    text = f"{title}\n{description}"
    out = {"elo": None, "patch": None, "side": None, "role": None, "region": None, "game_id": None}
    tags = _GAME_TAG.findall(description) or _GAME_TAG.findall(title)
    if tags:
        region, game_id, role, side = tags[-1]  # the channel puts the tag last
        out.update(region=region.upper(), game_id=game_id, role=_ROLES[role.lower()], side=side.lower())
    for text_part in (title, description):  # the title wins; the description is the fallback
        out["elo"] = next((tier for tier, pattern in _TIERS if re.search(rf"\b(?:{pattern})\b", text_part, re.I)),
                          None)
        if out["elo"]:
            break
    m = _PATCH.search(title) or _PATCH.search(description)
    if m:
        out["patch"] = m.group(1) or m.group(2)
    if out["side"] is None:
        m = _SIDE.search(text)
        if m:
            out["side"] = m.group(1).lower()
    return out


# ---------------------------------------------------------------------------------------------------------------
# yt-dlp plumbing

class _Log:
    """Routes yt-dlp's messages to our `log` callable; keeps the last error text for our exceptions."""

    def __init__(self, log):
        self.log, self.last_error = log, ""

    def debug(self, msg):  # progress and extractor chatter: too noisy for Dagster logs
        pass

    def info(self, msg):
        pass

    def warning(self, msg):
        self.log(f"yt-dlp warning: {msg}")

    def error(self, msg):
        self.last_error = msg


PREFERRED_FPS = (60, 40, 20)  # multiples of the 20 fps target: every output step spans the same source time


def format_selector(max_height: int) -> str:
    """yt-dlp format string: video only (no audio needed), a frame rate that 20 fps divides first (even motion
    per output frame), then H.264 first because it decodes fastest. '?' admits unknown heights (direct files
    through the generic extractor have no height until probed)."""
    h = int(max_height)
    choices = [f"bestvideo[height<=?{h}]{codec}[fps={fps}]" for fps in PREFERRED_FPS
               for codec in ("[vcodec^=avc1]", "")]
    choices += [f"bestvideo[height<=?{h}][vcodec^=avc1]", f"bestvideo[height<=?{h}]", f"best[height<=?{h}]"]
    return "/".join(choices)


def _ydl_params(cfg: SourceConfig, log, **extra) -> dict:
    from yt_dlp.utils import match_filter_func, parse_bytes

    h = int(cfg.max_height)
    params = {
        "format": format_selector(h),
        "enable_file_urls": True,
        "quiet": True, "no_warnings": False, "noprogress": True,
        "logger": _Log(log),
        "retries": cfg.retries, "fragment_retries": cfg.retries, "extractor_retries": min(cfg.retries, 3),
        "socket_timeout": 30,
        "noplaylist": True,
        # what yt-dlp knows before downloading; a direct file's duration is checked after its download
        "match_filter": match_filter_func("!is_live" + (f" & duration <=? {cfg.max_duration_s:g}"
                                                        if cfg.max_duration_s else "")),
    }
    if cfg.rate_limit:
        rate = parse_bytes(str(cfg.rate_limit))
        if rate is None:
            raise ValueError(f"rate_limit {cfg.rate_limit!r} is not a byte rate like '2M'")
        params["ratelimit"] = rate
    if cfg.cookies_file:
        if not Path(cfg.cookies_file).exists():
            raise VideoFetchError(f"cookies file {cfg.cookies_file} does not exist")
        params["cookiefile"] = str(cfg.cookies_file)
    params.update(extra)
    return params


def _clean_error(e: Exception) -> str:
    return re.sub(r"^ERROR:\s*", "", str(e)).strip()


def disk_full(e: BaseException) -> bool:
    """Whether `e` (or what caused it) is ENOSPC / EDQUOT. yt-dlp reports a failed write as text only
    ("unable to write data: [Errno 28] No space left on device"), so its wording counts too."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if re.search(r"no space left on device|disk quota exceeded|\[Errno (28|122)\]", str(e), re.I):
            return True
        exc_info = getattr(e, "exc_info", None)  # yt-dlp's DownloadError keeps the original here
        e = e.__cause__ or e.__context__ or (exc_info[1] if exc_info else None)
    return False


def _with_retries(what: str, fn, cfg: SourceConfig, log, out: Path | None = None):
    """Run fn(); retry transient yt-dlp failures with exponential backoff; raise VideoFetchError naming `what`.
    A full disk is not transient: it fails at once, naming `out` (where the download was being written)."""
    from yt_dlp.utils import DownloadError, ExtractorError

    attempt = 0
    while True:
        try:
            return fn()
        except (DownloadError, ExtractorError, OSError) as e:
            msg = _clean_error(e)
            if disk_full(e):
                where = f" writing {out}" if out is not None else ""
                raise VideoFetchError(f"{what}: no space left on device{where} ({msg})") from e
            if _PERMANENT.search(msg) or attempt >= cfg.retries:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                raise VideoFetchError(f"{what}: {msg}{tries}") from e
            delay = cfg.backoff_s * (2 ** attempt)
            log(f"{what}: {msg}; retry {attempt + 1}/{cfg.retries} in {delay:.1f}s")
            time.sleep(delay)
            attempt += 1


# ---------------------------------------------------------------------------------------------------------------
# listing

def _file_url(path: Path) -> str:
    return Path(path).resolve().as_uri()


def _local_entries(paths, kind: str) -> list[SourceEntry]:
    # yt-dlp's generic extractor names a file:// URL by the file stem; we use the same id (_disambiguate settles
    # two files with one stem)
    return [SourceEntry(video_id=p.stem, url=_file_url(p), title=p.stem, kind=kind) for p in paths]


def _folder_videos(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise VideoFetchError(f"source folder {folder} does not exist")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
                  and not p.name.startswith("."))


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
    entry: str      # the file list line, URL or `video_id (url)` as the source gave it
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
    from ahriuwu_core.catalog import invalid_id_reason, removed_ids

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
            local, first_local = _local_path(e.url), _local_path(first.url)
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
        from ahriuwu_core.demo.video import DemoConfig, demo_video_paths, discard_stale_demo_videos
        from ahriuwu_core.layout import DataLayout

        demo_dir, demo = DataLayout(data_root).demo_source, cfg.demo if cfg.demo is not None else DemoConfig()
        discard_stale_demo_videos(demo_dir, demo, log)
        return Listing(_local_entries(demo_video_paths(demo_dir, demo), "demo"))
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
            listing.skipped.append(Skipped(url, msg[len(url) + 2:] if msg.startswith(f"{url}: ") else msg))


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
    with yt_dlp.YoutubeDL(_ydl_params(cfg, log, **extra)) as ydl:
        for url in urls:
            info = _with_retries(url, lambda: ydl.extract_info(url, download=False, process=False), cfg, log)
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
                entries.append(SourceEntry(video_id=item["id"], url=video_url, title=item.get("title") or "",
                                           kind=kind, duration=item.get("duration"),
                                           description=item.get("description") or ""))
    return entries


# ---------------------------------------------------------------------------------------------------------------
# download

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
            return {"width": s.codec_context.width, "height": s.codec_context.height,
                    "fps": float(s.average_rate) if s.average_rate else None, "duration": duration}
    except Exception:  # frames.py reports unreadable videos with its own clear error
        return {}


def _local_path(url: str) -> Path | None:
    if not url.startswith("file://"):
        return None
    return Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))


def _local_sidecar(url: str) -> Path | None:
    """`<stem>.actions.json` or `<stem>.actions.jsonl` beside a local video (the first that exists)."""
    path = _local_path(url)
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
    local = _local_path(url)
    if cfg.kind == "demo" and kind == "demo" and local is not None:  # the demo is rendered on first fetch
        from ahriuwu_core.demo.video import DemoConfig, ensure_demo_video

        ensure_demo_video(local, cfg.demo if cfg.demo is not None else DemoConfig(), log)
    if local is not None and local.is_file() and local.stat().st_size == 0:  # yt-dlp's words: "no data blocks"
        raise VideoFetchError(f"video {video_id} ({url}): {local} is an empty file (0 bytes)")
    try:
        with atomic_path(final) as tmp:
            tmp.mkdir()

            def download(use_archive: bool):
                extra = {"outtmpl": str(tmp / "video.%(ext)s")}
                if use_archive:
                    extra["download_archive"] = str(archive)
                with yt_dlp.YoutubeDL(_ydl_params(cfg, log, **extra)) as ydl:
                    info = ydl.extract_info(url, download=True)
                    return ydl.sanitize_info(info)

            what = f"video {video_id} ({url})"
            info = _with_retries(what, lambda: download(cfg.archive and not refetch), cfg, log, out=final)
            files = [p for p in tmp.glob("video.*") if not p.name.endswith((".part", ".ytdl"))]
            if not files and cfg.archive:
                # the archive lists it but its folder is gone (deleted on purpose): download again
                info = _with_retries(what, lambda: download(False), cfg, log, out=final)
                files = [p for p in tmp.glob("video.*") if not p.name.endswith((".part", ".ytdl"))]
            if not files and info is not None and info.get("is_live"):
                raise VideoFetchError(f"{what}: a live stream; only finished videos are fetched")
            if not files and info is not None and cfg.max_duration_s and (info.get("duration") or 0) > cfg.max_duration_s:
                raise VideoFetchError(f"{what}: {info['duration']:.0f} s long, over the maximum duration "
                                      f"max_duration_s={cfg.max_duration_s:g}")
            if not files or info is None:
                raise VideoFetchError(f"{what}: yt-dlp finished without writing a video file")
            video = files[0]
            if info.get("id") and info["id"] != video_id:
                log(f"{what}: yt-dlp calls it {info['id']!r}; keeping the catalog id {video_id!r}")
            probed = _probe(video)
            if cfg.max_duration_s and (probed.get("duration") or 0) > cfg.max_duration_s:
                raise VideoFetchError(f"{what}: {probed['duration']:.0f} s long, over the maximum duration "
                                      f"max_duration_s={cfg.max_duration_s:g}")
            # a direct file's info has no real title (the generic extractor uses the id): keep the listing's
            title = info.get("title") if info.get("title") not in (None, "", video_id) else (listed_title or video_id)
            description = info.get("description") or listed_description
            parsed = parse_replay_metadata(title, description)
            meta = {
                "video_id": video_id, "url": url, "kind": kind, "title": title, "description": (description or "")[:1000],
                "uploader": info.get("uploader") or info.get("channel"), "upload_date": info.get("upload_date"),
                "duration": info.get("duration") or probed.get("duration"),
                "fps": info.get("fps") or probed.get("fps"),
                "width": info.get("width") or probed.get("width"), "height": info.get("height") or probed.get("height"),
                "ext": video.suffix.lstrip("."), "format_id": info.get("format_id"), "vcodec": info.get("vcodec"),
                **parsed,
                "sha256": file_sha256(video), "bytes": video.stat().st_size, "has_actions": False,
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
