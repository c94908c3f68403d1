"""Bad inputs at the Dagster level: a folder source (and two URLs) with good clips and broken ones, the per-video
stages `videos` and `frames` run per partition in a real sqlite instance.

Each broken input fails its own partition's run with a message naming it, leaves nothing half-written at the
final paths, does not disturb its siblings, and succeeds on a rerun once the input is fixed. (No 4K case here:
bounded memory on large frames is tested in tests/test_frames.py, and a 4K clip costs seconds to encode.)
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import math
import re
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import zarr
from dagster import AssetSelection, DagsterInstance, materialize

from ahriuwu_core.data import catalog
from ahriuwu_core.testing import media

ROOT = Path(__file__).resolve().parents[1]
GOOD = ["good_a", "ok_rotated", "ok_vfr"]
# video id -> (the step that must fail, what its error must say besides naming the input)
BAD = {
    "bad_empty": ("videos", r"bad_empty\.mp4 is an empty file \(0 bytes\)"),
    "bad_truncated": ("frames", r"not a readable video|truncated"),
    "bad_text": ("frames", r"not a readable video"),
    "bad_audio_only": ("frames", r"no video stream"),
    "bad_tiny": ("frames", r"16x16 is too small"),
    "bad_sidecar": ("frames", r"actions sidecar .*actions\.json: not readable JSON"),
    "bad_unreachable": ("videos", r"http://127\.0\.0\.1:\d+/bad_unreachable\.mp4.*[Cc]onnection refused"),
    "bad_unavailable": ("videos", r"http://127\.0\.0\.1:\d+/bad_unavailable\.mp4.*HTTP Error 404"),
}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve(directory: Path, port: int = 0) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), functools.partial(_QuietHandler, directory=str(directory))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket closes: connection refused


def _write_bad_inputs(src: Path) -> None:
    for vid in ("good_a", "bad_sidecar"):
        media.make_clip(src / f"{vid}.mp4", seconds=2)
    (src / "bad_sidecar.actions.json").write_text('{"fps": 30.0, "components": ["move"')  # cut off mid-file
    (src / "bad_empty.mp4").write_bytes(b"")
    whole = media.make_clip(src / ".whole.mp4", seconds=2).path.read_bytes()
    (src / "bad_truncated.mp4").write_bytes(whole[: len(whole) // 2])  # index (moov) at the end: lost
    (src / ".whole.mp4").unlink()
    (src / "bad_text.mp4").write_text("this is a text file, not a video\n" * 20)
    media.make_audio_only(src / "bad_audio_only.mp4")
    media.make_clip(src / "bad_tiny.mp4", seconds=2, width=16, height=16)
    media.make_clip(src / "ok_vfr.mp4", seconds=2, vfr=True)
    media.make_clip(src / "ok_rotated.mp4", seconds=2, rotation=90)


def _failure(result) -> tuple[list[str], str]:
    """(failed step keys, every error message in the failure chains)."""
    steps, texts = [], []
    for event in result.get_step_failure_events():
        steps.append(event.step_key)
        error = event.step_failure_data.error
        while error is not None:
            texts.append(error.message)
            error = error.cause
    return steps, "\n".join(texts)


def _leftovers(data_root: Path) -> list[str]:
    return sorted(str(p.relative_to(data_root)) for p in data_root.rglob("*") if re.search(r"\.(tmp|old)-", p.name))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    data_root = tmp_path_factory.mktemp("assets")
    src = tmp_path_factory.mktemp("source")
    served = tmp_path_factory.mktemp("served")
    _write_bad_inputs(src)
    env = {
        "DAGSTER_HOME": str(home),
        "AHRIUWU_DATA_ROOT": str(data_root),
        "AHRIUWU_PRESET": "tiny",
        "AHRIUWU_SOURCE": f"folder:{src}",
        "AHRIUWU_AUTOMATION": "off",
        "AHRIUWU_DEVICE": "cpu",
        "AHRIUWU_RETRIES": "0",
    }
    mp = pytest.MonkeyPatch()  # module-scoped fixture: the function-scoped `monkeypatch` is not available
    for k, v in env.items():
        mp.setenv(k, v)
    from pipeline.demo import register_source
    from pipeline.resources import resources_from_env

    instance = DagsterInstance.get()
    resources = resources_from_env()
    assert resources["project"].source_config().retries == 0
    server = _serve(served)  # serves an empty folder: 404 for everything
    closed = _closed_port()
    urls = {
        "bad_unreachable": f"http://127.0.0.1:{closed}/bad_unreachable.mp4",
        "bad_unavailable": f"http://127.0.0.1:{server.server_address[1]}/bad_unavailable.mp4",
    }
    # A `urls:` source would fail at listing already; register these two as the sensor would have.
    catalog.register_videos(data_root, [{"video_id": vid, "url": url, "kind": "urls"} for vid, url in urls.items()])
    ids = register_source(instance, resources)
    instance.add_dynamic_partitions("videos", list(urls))
    assert sorted(ids) == sorted(set(GOOD) | set(BAD) - set(urls))

    ctx = {
        "instance": instance,
        "resources": resources,
        "data_root": data_root,
        "src": src,
        "served": served,
        "closed_port": closed,
        "first": {},
    }
    for vid in sorted(instance.get_dynamic_partitions("videos")):  # bad_* run before their good siblings
        ctx["first"][vid] = _materialize(ctx, vid)
    yield ctx
    server.shutdown()
    instance.dispose()
    mp.undo()


def _materialize(ctx, vid: str, refetch: bool = False):
    from pipeline.assets import frames, videos
    from pipeline.definitions import ALL_ASSETS

    return materialize(
        ALL_ASSETS,
        selection=AssetSelection.assets(videos, frames),
        instance=ctx["instance"],
        resources=ctx["resources"],
        partition_key=vid,
        raise_on_error=False,
        run_config={"ops": {"videos": {"config": {"refetch": refetch}}}},
    )


def test_good_and_tolerated_inputs_succeed(project):
    data_root = project["data_root"]
    for vid in GOOD:
        result = project["first"][vid]
        assert result.success, (vid, _failure(result))
        group = zarr.open_group(str(data_root / "frames" / f"{vid}.zarr"), mode="r")
        assert group["frames"].shape[1:] == (64, 64, 3)
        assert not bool(np.asarray(group["has_actions"][:]).any())  # no sidecar: the no-action mask
    # every partition of the instance ran, good or bad, each in its own run
    assert set(project["first"]) == set(GOOD) | set(BAD)


def test_variable_frame_rate_keeps_the_duration(project):
    clip_duration = media.make_clip(project["src"].parent / "vfr_ref.mp4", seconds=2, vfr=True).duration
    group = zarr.open_group(str(project["data_root"] / "frames" / "ok_vfr.zarr"), mode="r")
    assert abs(group["frames"].shape[0] - math.floor(clip_duration * 20)) <= 1


def test_rotated_video_comes_out_upright(project):
    group = zarr.open_group(str(project["data_root"] / "frames" / "ok_rotated.zarr"), mode="r")
    # stored as 90x160 pixels with a 90-degree display matrix: displays (and must come out) as 160x90
    assert group.attrs["source_size"] == [160, 90] and group.attrs["rotation"] in (90, 270)
    frames = np.asarray(group["frames"][:])
    # output frame k (t = k/20 s) shows source frame floor(k * 30 / 20); the barcode only reads right upright
    for k in (0, 5, 17, len(frames) - 1):
        assert media.read_frame_index(frames[k]) == (k * 3) // 2, k


def _tree_hash(root: Path) -> str:
    """sha256 over every file's relative path and bytes under `root` (a zarr store)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize("vid", sorted(BAD))
def test_bad_input_fails_only_its_partition_then_reruns_after_fix(project, vid):
    data_root, src = project["data_root"], project["src"]
    siblings_before = {sibling: _tree_hash(data_root / "frames" / f"{sibling}.zarr") for sibling in GOOD}
    step, reason = BAD[vid]
    result = project["first"][vid]
    assert not result.success
    steps, text = _failure(result)
    assert steps == [step], text
    assert vid in text and re.search(reason, text), text
    status = project["instance"].get_run_by_id(result.run_id).status.value
    assert status == "FAILURE"
    assert not (data_root / "frames" / f"{vid}.zarr").exists()
    if step == "videos":
        assert not (data_root / "videos" / vid).exists()
    assert _leftovers(data_root) == []

    # Fix the input, then rerun the partition (refetch: the source changed under a video already fetched).
    server = None
    if vid == "bad_sidecar":
        clip_times = [i / 30 for i in range(60)]
        media.write_actions_sidecar(src / "bad_sidecar.actions.json", clip_times)
    elif vid == "bad_unavailable":
        media.make_clip(project["served"] / "bad_unavailable.mp4", seconds=2)
    elif vid == "bad_unreachable":
        media.make_clip(project["served"] / "bad_unreachable.mp4", seconds=2)
        server = _serve(project["served"], project["closed_port"])  # the host is up again
    else:
        media.make_clip(src / f"{vid}.mp4", seconds=2)
    try:
        rerun = _materialize(project, vid, refetch=True)
    finally:
        if server is not None:
            server.shutdown()
    assert rerun.success, _failure(rerun)
    group = zarr.open_group(str(data_root / "frames" / f"{vid}.zarr"), mode="r")
    assert group["frames"].shape == (40, 64, 64, 3)
    has_actions = np.asarray(group["has_actions"][:])
    if vid == "bad_sidecar":  # every frame but the first, which no action led into
        assert has_actions[1:].all() and not has_actions[0]
    else:
        assert not has_actions.any()
    assert json.loads((data_root / "videos" / vid / "meta.json").read_text())["video_id"] == vid
    assert _leftovers(data_root) == []
    # the siblings' stores are untouched, byte for byte, by this partition's failure and rerun
    assert {sibling: _tree_hash(data_root / "frames" / f"{sibling}.zarr") for sibling in GOOD} == siblings_before


def test_refetch_replaces_the_video_only_when_the_new_download_is_complete(tmp_path):
    """fetch_video(refetch=True) after a source was fixed: a failing refetch keeps the fetched video; a good one
    replaces it (the `videos` stage's `refetch` config)."""
    from ahriuwu_core.sources import SourceConfig, VideoFetchError, fetch_video

    src, out = tmp_path / "src", tmp_path / "videos"
    media.make_clip(src / "clip.mp4", seconds=1, width=96, height=64)
    entry = {"video_id": "clip", "url": (src / "clip.mp4").resolve().as_uri()}
    cfg = SourceConfig(kind="folder", retries=0)
    first = fetch_video(entry, out, cfg)
    assert fetch_video(entry, out, cfg)["skipped"]

    (src / "clip.mp4").write_bytes(b"")
    with pytest.raises(VideoFetchError, match=r"video clip \(file://.*clip\.mp4\): .*clip\.mp4 is an empty file"):
        fetch_video(entry, out, cfg, refetch=True)
    kept = json.loads((out / "clip" / "meta.json").read_text())
    assert kept["sha256"] == first["sha256"] and (out / "clip" / "video.mp4").exists()
    assert _leftovers(out) == []

    media.make_clip(src / "clip.mp4", seconds=1, width=96, height=64, pattern="textured")
    again = fetch_video(entry, out, cfg, refetch=True)
    assert not again["skipped"] and again["sha256"] != first["sha256"]
    assert json.loads((out / "clip" / "meta.json").read_text())["sha256"] == again["sha256"]
