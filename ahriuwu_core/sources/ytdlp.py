"""yt-dlp plumbing: the options every listing and download uses (format choice, rate limit, cookies, the
duration cap), its messages routed to our log, and retries of transient failures with backoff."""

from __future__ import annotations

import errno
import re
import time
from pathlib import Path

from ahriuwu_core.sources.config import SourceConfig, VideoFetchError

# permanent failures: retrying won't help (the first group is yt-dlp's wording for YouTube, then HTTP codes)
_PERMANENT = re.compile(
    r"unavailable|private video|removed|copyright|not available|members[- ]only|"
    r"sign in to confirm your age|unsupported url|HTTP Error (400|401|403|404|410)|"
    r"no such file|is not a valid url|no video formats",
    re.I,
)


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
    choices = [
        f"bestvideo[height<=?{h}]{codec}[fps={fps}]" for fps in PREFERRED_FPS for codec in ("[vcodec^=avc1]", "")
    ]
    choices += [f"bestvideo[height<=?{h}][vcodec^=avc1]", f"bestvideo[height<=?{h}]", f"best[height<=?{h}]"]
    return "/".join(choices)


def ydl_params(cfg: SourceConfig, log, **extra) -> dict:
    from yt_dlp.utils import match_filter_func, parse_bytes

    h = int(cfg.max_height)
    params = {
        "format": format_selector(h),
        "enable_file_urls": True,
        "quiet": True,
        "no_warnings": False,
        "noprogress": True,
        "logger": _Log(log),
        "retries": cfg.retries,
        "fragment_retries": cfg.retries,
        "extractor_retries": min(cfg.retries, 3),
        "socket_timeout": 30,
        "noplaylist": True,
        # what yt-dlp knows before downloading; a direct file's duration is checked after its download
        "match_filter": match_filter_func(
            "!is_live" + (f" & duration <=? {cfg.max_duration_s:g}" if cfg.max_duration_s else "")
        ),
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


def with_retries(what: str, fn, cfg: SourceConfig, log, out: Path | None = None):
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
            delay = cfg.backoff_s * (2**attempt)
            log(f"{what}: {msg}; retry {attempt + 1}/{cfg.retries} in {delay:.1f}s")
            time.sleep(delay)
            attempt += 1
