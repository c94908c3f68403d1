"""The sources package through the real yt-dlp code paths, offline: file:// URLs and a local HTTP server on
127.0.0.1."""

import functools
import hashlib
import http.server
import json
import socket
import threading
from pathlib import Path

import av
import pytest

from ahriuwu_core import sources
from ahriuwu_core.data.layout import DataLayout
from ahriuwu_core.sources import SourceConfig, SourceEntry, VideoFetchError
from ahriuwu_core.sources.ytdlp import ydl_params
from ahriuwu_core.testing import media


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_CountingHandler, directory=str(root)))
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_port}", server
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connection refused
    return port


def quiet(*_):
    pass


def make_source_folder(folder: Path, n=2, with_actions=True):
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(n):
        clip = media.make_clip(folder / f"clip_{i}.mp4", seconds=0.5, fps=20, width=64, height=48)
        if with_actions and i == 0:
            media.write_actions_sidecar(folder / f"clip_{i}.actions.json", clip.times)
        clips.append(clip)
    return clips


def test_folder_listing_and_file_url_download(tmp_path):
    make_source_folder(tmp_path / "src")
    (tmp_path / "src" / "notes.txt").write_text("not a video")
    cfg = SourceConfig(kind="folder", path=str(tmp_path / "src"))
    entries = sources.list_videos(cfg, tmp_path / "data", log=quiet)
    assert [e.video_id for e in entries] == ["clip_0", "clip_1"]
    assert entries[0].url.startswith("file://")
    out = tmp_path / "data" / "videos"
    meta = sources.fetch_video(entries[0], out, cfg, log=quiet)
    folder = out / "clip_0"
    video = folder / "video.mp4"
    assert meta["video_id"] == "clip_0" and not meta["skipped"]
    assert meta["sha256"] == hashlib.sha256(video.read_bytes()).hexdigest()
    assert video.read_bytes() == (tmp_path / "src" / "clip_0.mp4").read_bytes()
    assert (meta["width"], meta["height"], meta["fps"]) == (64, 48, 20.0)
    info = json.loads((folder / "info.json").read_text())
    assert info["id"] == "clip_0" and info["extractor_key"] == "Generic"  # yt-dlp's id is the file stem
    assert json.loads((folder / "meta.json").read_text())["sha256"] == meta["sha256"]
    assert json.loads((folder / "actions.json").read_text())["components"] == ["move", "ability"]
    with av.open(str(video)) as c:
        assert len(c.streams.video) == 1 and not c.streams.audio  # video only
    # the second clip has no sidecar
    meta1 = sources.fetch_video(sources.entry_dict(entries[1]), out, cfg, log=quiet)  # dict entries work too
    assert not meta1["has_actions"] and not (out / "clip_1" / "actions.json").exists()
    assert not list(out.glob(".*tmp-*"))
    assert "clip_0" in (out / "download_archive.txt").read_text()


def test_http_download_and_archive_skips_rerun(tmp_path, http_server):
    root, base, server = http_server
    media.make_clip(root / "match_a.mp4", seconds=0.5, fps=25, width=64, height=48)
    cfg = SourceConfig(kind="urls", urls=[f"{base}/match_a.mp4"], retries=0)
    entries = sources.list_videos(cfg, tmp_path, log=quiet)
    assert [(e.video_id, e.url) for e in entries] == [("match_a", f"{base}/match_a.mp4")]
    out = tmp_path / "videos"
    meta = sources.fetch_video(entries[0], out, cfg, log=quiet)
    assert (out / "match_a" / "video.mp4").read_bytes() == (root / "match_a.mp4").read_bytes()
    assert meta["fps"] == 25.0 and not meta["has_actions"]
    requests_before = len(server.requests)
    again = sources.fetch_video(entries[0], out, cfg, log=quiet)
    assert again["skipped"] and again["sha256"] == meta["sha256"]
    assert len(server.requests) == requests_before  # nothing fetched on the rerun
    # a deleted folder is fetched again even though the archive lists the id
    import shutil

    shutil.rmtree(out / "match_a")
    assert not sources.fetch_video(entries[0], out, cfg, log=quiet)["skipped"]
    assert (out / "match_a" / "video.mp4").exists()


def test_unreachable_url_names_the_url(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/gone.mp4"
    cfg = SourceConfig(kind="urls", urls=[url], retries=1, backoff_s=0.01)
    entry = SourceEntry(video_id="gone", url=url)
    with pytest.raises(VideoFetchError) as err:
        sources.fetch_video(entry, tmp_path / "videos", cfg, log=quiet)
    msg = str(err.value)
    assert url in msg and "gone" in msg and "refused" in msg.lower() and "2 attempts" in msg
    assert not (tmp_path / "videos" / "gone").exists() and not list((tmp_path / "videos").glob(".*tmp-*"))
    with pytest.raises(VideoFetchError, match="127.0.0.1"):
        sources.list_videos(cfg, tmp_path, log=quiet)


def test_unavailable_video_is_a_clear_permanent_error(tmp_path, http_server):
    root, base, server = http_server
    (root / "page.html").write_text("<html><body>This video is unavailable</body></html>")
    cfg = SourceConfig(kind="urls", retries=3, backoff_s=5.0)  # a retry would take >= 5 s: must not retry
    with pytest.raises(VideoFetchError, match=r"missing.*404") as err:
        sources.fetch_video(SourceEntry("missing", f"{base}/missing.mp4"), tmp_path / "v", cfg, log=quiet)
    assert f"{base}/missing.mp4" in str(err.value)
    assert server.requests.count("/missing.mp4") == 1
    with pytest.raises(VideoFetchError, match=r"(?i)page.*unsupported url"):
        sources.fetch_video(SourceEntry("page", f"{base}/page.html"), tmp_path / "v", cfg, log=quiet)
    assert not (tmp_path / "v" / "missing").exists() and not (tmp_path / "v" / "page").exists()


def test_filelist_mixes_paths_and_urls(tmp_path, http_server):
    root, base, _ = http_server
    make_source_folder(tmp_path / "src", n=2, with_actions=False)
    media.make_clip(root / "remote.mp4", seconds=0.5, fps=20, width=64, height=48)
    listing = tmp_path / "list.txt"
    listing.write_text(
        f"# my videos\nsrc/clip_1.mp4\n{tmp_path / 'src' / 'clip_0.mp4'}  # absolute\n\n{base}/remote.mp4\n"
    )
    cfg = SourceConfig(kind="filelist", path=str(listing))
    entries = sources.list_videos(cfg, tmp_path, log=quiet)
    assert [e.video_id for e in entries] == ["clip_1", "clip_0", "remote"]
    assert entries[2].url == f"{base}/remote.mp4" and entries[0].url.startswith("file://")
    listing.write_text("src/nope.mp4\n")
    with pytest.raises(VideoFetchError, match="nope.mp4"):
        sources.list_videos(cfg, tmp_path, log=quiet)
    with pytest.raises(VideoFetchError, match="does not exist"):
        sources.list_videos(SourceConfig(kind="folder", path=str(tmp_path / "nowhere")), tmp_path, log=quiet)
    (tmp_path / "src" / "clip_1.mkv").write_bytes((tmp_path / "src" / "clip_1.mp4").read_bytes())
    ids = [
        e.video_id
        for e in sources.list_videos(SourceConfig(kind="folder", path=str(tmp_path / "src")), tmp_path, log=quiet)
    ]
    assert ids[:2] == ["clip_0", "clip_1"] and len(ids) == 3 and ids[2].startswith("clip_1-")  # two files, two ids


def test_demo_source_goes_through_yt_dlp(tmp_path):
    from ahriuwu_core.demo.video import DemoConfig

    cfg = SourceConfig(kind="demo", demo=DemoConfig(num_videos=2, duration_s=0.5, width=128, height=72))
    entries = sources.list_videos(cfg, tmp_path, log=quiet)
    assert [e.video_id for e in entries] == ["demo_000", "demo_001"]
    assert not (tmp_path / "demo_source" / "demo_000.mp4").exists()  # listed, rendered when fetched
    meta = sources.fetch_video(entries[1], tmp_path / "videos", cfg, log=quiet)
    assert (tmp_path / "demo_source" / "demo_001.mp4").exists()
    info = json.loads((tmp_path / "videos" / "demo_001" / "info.json").read_text())
    assert info["extractor_key"] == "Generic" and info["webpage_url"].startswith("file://")
    assert meta["has_actions"] and (tmp_path / "videos" / "demo_001" / "actions.json").exists()
    assert (meta["width"], meta["height"]) == (128, 72)


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="rate_limit"):
        ydl_params(SourceConfig(rate_limit="fast"), quiet)
    assert ydl_params(SourceConfig(rate_limit="2M"), quiet)["ratelimit"] == 2 * 1024 * 1024
    with pytest.raises(VideoFetchError, match="cookies"):
        ydl_params(SourceConfig(cookies_file=str(tmp_path / "c.txt")), quiet)
    (tmp_path / "c.txt").write_text("# Netscape HTTP Cookie File\n")
    assert ydl_params(SourceConfig(cookies_file=str(tmp_path / "c.txt")), quiet)["cookiefile"]
    assert "height<=?480" in ydl_params(SourceConfig(max_height=480), quiet)["format"]
    with pytest.raises(ValueError, match="kind"):
        sources.list_videos(SourceConfig(kind="torrent"), tmp_path)


@pytest.mark.parametrize(
    "title, description, expected",
    [
        (
            "Garen vs Darius - Grandmaster 14.23",
            "Full replay.\nEUW-7646979958-TOP-RED",
            dict(elo="grandmaster", patch="14.23", side="red", role="top", region="EUW", game_id="7646979958"),
        ),
        (
            "Challenger Garen Top Patch 15.1 | blue side",
            "",
            dict(elo="challenger", patch="15.1", side="blue", role=None, region=None, game_id=None),
        ),
        ("plat garen 1.5x speed replay", "Mastery 7 champion", dict(elo="platinum", patch=None, side=None)),
        (
            "Master Garen 25.S1.3",
            "watch more\nKR-123456789-JUNGLE-BLUE",
            dict(elo="master", patch="25.S1.3", role="jungle", region="KR", side="blue"),
        ),
        (
            "Garen gameplay",
            "Emerald IV lobby, EUN1-3312345678-SUPPORT-RED",
            dict(elo="emerald", region="EUN1", role="support", side="red", game_id="3312345678"),
        ),
        (None, None, dict(elo=None, patch=None, side=None, role=None, region=None, game_id=None)),
    ],
)
def test_parse_replay_metadata(title, description, expected):
    parsed = sources.parse_replay_metadata(title, description)
    assert set(parsed) == {"elo", "patch", "side", "role", "region", "game_id"}
    for key, value in expected.items():
        assert parsed[key] == value, (key, parsed)


def test_playlist_feed_flat_listing_and_max_videos(tmp_path, http_server):
    root, base, server = http_server
    for name in ("garen_a", "garen_b", "garen_c"):
        media.make_clip(root / f"{name}.mp4", seconds=0.5, fps=20, width=64, height=48)
    items = [
        ("garen_a", "Gold Garen 14.23", "Replay\nEUW-7646979958-TOP-RED"),
        ("garen_b", "Plat Garen", ""),
        ("garen_c", "Iron Garen", ""),
    ]
    (root / "feed.xml").write_text(
        f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Replays</title>'
        f"<link>{base}/</link><description>replays</description>"
        + "".join(
            f"<item><title>{t}</title><link>{base}/{n}.mp4</link><description>{d}</description></item>"
            for n, t, d in items
        )
        + "</channel></rss>"
    )
    cfg = SourceConfig(kind="playlist", urls=[f"{base}/feed.xml"], max_videos=2)
    entries = sources.list_videos(cfg, tmp_path, log=quiet)
    assert [(e.video_id, e.title) for e in entries] == [("garen_a", "Gold Garen 14.23"), ("garen_b", "Plat Garen")]
    assert server.requests == ["/feed.xml"]  # flat: the videos themselves are not touched while listing
    meta = sources.fetch_video(entries[0], tmp_path / "videos", cfg, log=quiet)
    info = json.loads((tmp_path / "videos" / "garen_a" / "info.json").read_text())
    assert info["id"] == "garen_a"  # the id we listed is yt-dlp's id
    # a direct file has no title of its own: the listing's title and description feed meta.json
    assert meta["title"] == "Gold Garen 14.23"
    assert (meta["elo"], meta["patch"], meta["game_id"], meta["side"]) == ("gold", "14.23", "7646979958", "red")
    assert json.loads((tmp_path / "videos" / "garen_a" / "meta.json").read_text())["region"] == "EUW"


def _fake_formats():
    def f(fid, h, vcodec, acodec="none"):
        return {
            "format_id": fid,
            "url": f"https://example.invalid/{fid}",
            "ext": "mp4",
            "height": h,
            "width": h * 16 // 9 if h else None,
            "vcodec": vcodec,
            "acodec": acodec,
            "tbr": h or 128,
            "protocol": "https",
        }

    return [
        f("18", 360, "avc1.42001E", "mp4a.40.2"),
        f("140", None, "none", "mp4a.40.2"),
        f("247", 720, "vp09.00.31.08"),
        f("136", 720, "avc1.4d401f"),
        f("137", 1080, "avc1.640028"),
        f("248", 1080, "vp09.00.40.08"),
        f("135", 480, "avc1.4d401e"),
    ]


@pytest.mark.parametrize("max_height, expected", [(720, "136"), (480, "135"), (1080, "137")])
def test_format_selection_is_video_only_and_capped(max_height, expected):
    import yt_dlp

    params = ydl_params(SourceConfig(max_height=max_height), quiet)
    with yt_dlp.YoutubeDL(params) as ydl:
        info = {
            "id": "abc",
            "title": "t",
            "extractor": "fake",
            "extractor_key": "Fake",
            "webpage_url": "https://example.invalid/abc",
            "formats": _fake_formats(),
        }
        chosen = ydl.process_ie_result(info, download=False)
    assert chosen["format_id"] == expected
    assert chosen["acodec"] == "none" and chosen["height"] <= max_height  # no audio, never above the cap


def test_format_selection_prefers_frame_rates_that_20_divides():
    import yt_dlp

    def f(fid, h, fps, vcodec):
        return {
            "format_id": fid,
            "url": f"https://example.invalid/{fid}",
            "ext": "mp4",
            "height": h,
            "fps": fps,
            "width": h * 16 // 9,
            "vcodec": vcodec,
            "acodec": "none",
            "tbr": h * fps / 30,
            "protocol": "https",
        }

    formats = [
        f("136", 720, 30, "avc1.4d401f"),
        f("298", 720, 60, "avc1.4d4020"),
        f("302", 720, 60, "vp09.00.40.08"),
        f("137", 1080, 60, "avc1.640028"),
        f("135", 480, 30, "avc1.4d401e"),
    ]
    params = ydl_params(SourceConfig(max_height=720), quiet)
    with yt_dlp.YoutubeDL(params) as ydl:
        info = {
            "id": "abc",
            "title": "t",
            "extractor": "fake",
            "extractor_key": "Fake",
            "webpage_url": "https://example.invalid/abc",
            "formats": formats,
        }
        assert ydl.process_ie_result(info, download=False)["format_id"] == "298"  # 60 fps H.264 at the cap
        info["formats"] = [x for x in formats if x["format_id"] not in ("298",)]
        assert ydl.process_ie_result(dict(info), download=False)["format_id"] == "302"  # 60 fps beats codec
        info["formats"] = [x for x in formats if x["fps"] == 30]
        assert ydl.process_ie_result(dict(info), download=False)["format_id"] == "136"  # no choice: 30 fps


def _feed(root: Path, base: str, links: list[str]) -> str:
    """An RSS feed of direct links (flat listing reads it without touching the videos); returns its URL."""
    (root / "feed.xml").write_text(
        f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Replays</title>'
        f"<link>{base}/</link><description>replays</description>"
        + "".join(f"<item><title>t</title><link>{base}/{link}</link></item>" for link in links)
        + "</channel></rss>"
    )
    return f"{base}/feed.xml"


def test_filelist_repeats_are_one_video_and_same_stems_get_distinct_stable_ids(tmp_path, http_server):
    from ahriuwu_core.data import catalog

    root, base, _ = http_server
    for sub in ("sub1", "sub2"):
        media.make_clip(tmp_path / sub / "same.mp4", seconds=0.5, fps=20, width=64, height=48)
    media.make_clip(root / "remote.mp4", seconds=0.5, fps=20, width=64, height=48)
    listing = tmp_path / "list.txt"
    listing.write_text(
        f"sub1/same.mp4\nsub1/same.mp4\n./sub1/same.mp4\n{tmp_path / 'sub1' / 'same.mp4'}\n"
        f"sub2/same.mp4\n{base}/remote.mp4\n{base}/remote.mp4\n"
    )
    cfg = SourceConfig(kind="filelist", path=str(listing))
    result = sources.list_source(cfg, tmp_path / "data", log=quiet)
    ids = [e.video_id for e in result.entries]
    assert result.skipped == []
    assert len(ids) == 3 and ids[0] == "same" and ids[1].startswith("same-") and ids[2] == "remote"
    assert result.entries[0].url.endswith("/sub1/same.mp4") and result.entries[1].url.endswith("/sub2/same.mp4")
    assert [e.video_id for e in sources.list_videos(cfg, tmp_path / "data", log=quiet)] == ids  # stable
    assert catalog.register_videos(tmp_path / "data", [sources.entry_dict(e) for e in result.entries]) == ids
    meta = sources.fetch_video(result.entries[1], tmp_path / "videos", cfg, log=quiet)
    assert meta["video_id"] == ids[1] and (tmp_path / "videos" / ids[1] / "video.mp4").exists()


def _bad_entries_filelist(tmp_path: Path, root: Path, base: str) -> Path:
    """good.mp4 and feed item ok.mp4 are good; a missing file, a dot-file and a `../../evil` feed item are not."""
    media.make_clip(tmp_path / "src" / "good.mp4", seconds=0.5, fps=20, width=64, height=48)
    media.make_clip(tmp_path / "src" / ".hidden.mp4", seconds=0.5, fps=20, width=64, height=48)
    media.make_clip(root / "ok.mp4", seconds=0.5, fps=20, width=64, height=48)
    feed = _feed(root, base, ["..%2F..%2Fevil.mp4", "ok.mp4"])
    listing = tmp_path / "list.txt"
    listing.write_text(f"src/good.mp4\nsrc/missing.mp4\nsrc/.hidden.mp4\n{feed}\n")
    return listing


def test_a_bad_entry_is_skipped_and_reported_and_the_good_ones_are_listed(tmp_path, http_server):
    root, base, _ = http_server
    cfg = SourceConfig(kind="filelist", path=str(_bad_entries_filelist(tmp_path, root, base)))
    result = sources.list_source(cfg, tmp_path / "data", log=quiet)
    assert [e.video_id for e in result.entries] == ["good", "ok"]
    skipped = {s.entry: s.reason for s in result.skipped}
    assert set(skipped) == {
        "src/missing.mp4",
        f".hidden ({_file_url(tmp_path / 'src' / '.hidden.mp4')})",
        f"../../evil ({base}/..%2F..%2Fevil.mp4)",
    }
    assert "does not exist" in skipped["src/missing.mp4"]
    assert "'/'" in skipped[f"../../evil ({base}/..%2F..%2Fevil.mp4)"]
    logged = []
    assert [e.video_id for e in sources.list_videos(cfg, tmp_path / "data", log=logged.append)] == ["good", "ok"]
    assert any("../../evil" in line and "'/'" in line for line in logged)
    # nothing listable at all is still an error, naming the entry
    (tmp_path / "only_bad.txt").write_text("src/missing.mp4\n")
    with pytest.raises(VideoFetchError, match="missing.mp4"):
        sources.list_source(SourceConfig(kind="filelist", path=str(tmp_path / "only_bad.txt")), tmp_path, log=quiet)


def _file_url(path: Path) -> str:
    return path.resolve().as_uri()


def test_sensor_and_demo_registration_add_exactly_the_good_partitions(tmp_path, http_server, monkeypatch):
    from dagster import DagsterInstance, SkipReason, build_sensor_context

    from pipeline.demo import register_source
    from pipeline.resources import resources_from_env
    from pipeline.sensors import new_videos_sensor
    from tests._instance import scratch_project

    root, base, _ = http_server
    listing = _bad_entries_filelist(tmp_path, root, base)
    media.make_clip(tmp_path / "src" / "sub" / "good.mp4", seconds=0.5, fps=20, width=64, height=48)
    listing.write_text(listing.read_text() + "src/good.mp4\nsrc/sub/good.mp4\n")  # a repeat and a same stem
    _, data_root = scratch_project(tmp_path / "proj", tmp_path / "src", monkeypatch)
    monkeypatch.setenv("AHRIUWU_SOURCE", f"filelist:{listing}")
    resources = resources_from_env()
    instance = DagsterInstance.get()
    try:
        context = build_sensor_context(instance=instance, resources={k: resources[k] for k in ("storage", "project")})
        result = new_videos_sensor(context)
        [request] = result.dynamic_partitions_requests
        keys = list(request.partition_keys)
        assert len(keys) == 3 and keys[:2] == ["good", "ok"] and keys[2].startswith("good-")
        instance.add_dynamic_partitions(request.partitions_def_name, keys)
        assert sorted(instance.get_dynamic_partitions("videos")) == sorted(keys)
        assert sorted(p.stem for p in DataLayout(data_root).catalog_dir.glob("*.json")) == sorted(keys)
        context = build_sensor_context(
            instance=instance, cursor=result.cursor, resources={k: resources[k] for k in ("storage", "project")}
        )
        again = new_videos_sensor(context)
        assert isinstance(again, SkipReason)
        assert "../../evil" in again.skip_message and "src/missing.mp4" in again.skip_message

        # the same listing through `make demo`'s registration: it adds the partition that went missing
        instance.delete_dynamic_partition("videos", "ok")
        logged = []
        assert register_source(instance, resources, log=logged.append) == keys
        assert sorted(instance.get_dynamic_partitions("videos")) == sorted(keys)
        assert any(line.startswith("skipped ../../evil") and "'/'" in line for line in logged)
        assert any(line.startswith("skipped src/missing.mp4") and "does not exist" in line for line in logged)
    finally:
        instance.dispose()


def test_disk_full_is_named_and_not_retried(tmp_path, monkeypatch):
    import errno

    from yt_dlp.downloader.http import HttpFD

    src = tmp_path / "src"
    make_source_folder(src, n=1, with_actions=False)
    [entry] = sources.list_videos(SourceConfig(kind="folder", path=str(src)), tmp_path, log=quiet)
    opened = []

    class FullDisk:  # the download's output file on a full disk: every write fails
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

    real_open = HttpFD.sanitize_open

    def sanitize_open(self, filename, open_mode):
        f, name = real_open(self, filename, open_mode)
        opened.append(name)
        return FullDisk(f), name

    monkeypatch.setattr(HttpFD, "sanitize_open", sanitize_open)
    out = tmp_path / "videos"
    cfg = SourceConfig(kind="folder", path=str(src), retries=3, backoff_s=0.01)
    with pytest.raises(VideoFetchError) as err:
        sources.fetch_video(entry, out, cfg, log=quiet)
    msg = str(err.value)
    assert len(opened) == 1  # one attempt: a retry cannot free space
    assert "no space left on device writing" in msg and str(out / "clip_0") in msg and "attempts" not in msg
    assert not (out / "clip_0").exists() and not list(out.glob(".*tmp-*"))


def test_too_long_videos_and_live_streams_are_refused(tmp_path):
    """A video over max_duration_s fails its fetch with an error that says so, and leaves nothing behind; yt-dlp's
    match filter refuses live streams and known-too-long videos before downloading them."""
    from ahriuwu_core.sources import VideoFetchError

    src = tmp_path / "src"
    media.make_clip(src / "long.mp4", seconds=3.0, fps=20, width=64, height=48)
    cfg = SourceConfig(kind="folder", path=str(src), max_duration_s=2.0)
    [entry] = sources.list_videos(cfg, tmp_path, log=quiet)
    out = tmp_path / "videos"
    with pytest.raises(VideoFetchError, match=r"long.*3 s long, over the maximum duration max_duration_s=2"):
        sources.fetch_video(entry, out, cfg, log=quiet)
    assert not (out / "long").exists() and not list(out.glob(".*tmp-*"))
    fetched = sources.fetch_video(
        entry, out, SourceConfig(kind="folder", path=str(src), max_duration_s=10.0), log=quiet
    )
    assert fetched["duration"] == pytest.approx(3.0, abs=0.1)  # under the cap it is fetched

    refuse = ydl_params(cfg, quiet)["match_filter"]
    assert "does not pass filter" in refuse({"id": "x", "is_live": True, "duration": 1}, incomplete=False)
    assert "does not pass filter" in refuse({"id": "x", "duration": 7200}, incomplete=False)
    assert refuse({"id": "x", "duration": 1.5}, incomplete=False) is None
    assert refuse({"id": "x"}, incomplete=False) is None  # unknown before the download: checked after it


def test_the_catalog_tells_videos_of_the_configured_source_from_the_others(tmp_path):
    """One dataset per source: the manifest keeps the videos registered from the configured source (and those
    that record none) and leaves out the others, e.g. the demo's after switching to a channel."""
    from ahriuwu_core.data import catalog

    root = tmp_path / "data"
    catalog.register_videos(root, [{"video_id": "demo_000", "url": "file:///d.mp4"}], "demo")
    catalog.register_videos(root, [{"video_id": "abc", "url": "https://youtu.be/abc"}], "channel:https://c")
    catalog.register_videos(root, [{"video_id": "old", "url": "file:///o.mp4"}])
    assert catalog.catalog_entry(root, "abc")["source"] == "channel:https://c"
    assert catalog.of_source(root, ["abc", "demo_000", "old"], "channel:https://c") == (["abc", "old"], ["demo_000"])
    assert catalog.of_source(root, ["abc", "demo_000"], "demo") == (["demo_000"], ["abc"])
