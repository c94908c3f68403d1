"""frames.py: exact 20 fps resampling by timestamp, resize modes, rotation, HUD masks, actions, bad inputs."""

import json
import math
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ahriuwu_core.data import files, frame_geometry, frame_stream, frames
from ahriuwu_core.data.conventions import HUD_LAYOUTS
from ahriuwu_core.data.frames import FramesConfig, FramesError
from ahriuwu_core.testing import media


def expected_indices(times, n_out, fps=20):
    """Hand rule: output k shows the latest source frame with time <= k/fps."""
    times = np.asarray(times)
    return [int(np.searchsorted(times, k / fps + 1e-9, side="right") - 1) for k in range(n_out)]


def decoded_indices(store):
    arr = np.asarray(frames.open_frames(store)["frames"])
    return [media.read_frame_index(a) for a in arr]


def no_leftovers(store: Path):
    return not store.exists() and not list(store.parent.glob(f".{store.stem}.tmp-*"))


@pytest.mark.parametrize("fps", [Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30), Fraction(60)])
def test_exact_20fps_by_timestamp(tmp_path, fps):
    clip = media.make_clip(tmp_path / "clip.mp4", seconds=2.0, fps=fps)
    stats = frames.extract_frames(clip.path, tmp_path / "clip.zarr", FramesConfig())
    assert stats["num_frames"] == math.floor(clip.duration * 20)
    assert decoded_indices(tmp_path / "clip.zarr") == expected_indices(clip.times, stats["num_frames"])
    assert frames.check_frame_count(stats)[0]
    assert abs(stats["source_fps"] - float(fps)) < 1e-3
    # Time steps between the shown source frames: even only when 20 fps divides the source rate.
    lo, hi = stats["time_step_range_ms"]
    if fps == 60:
        assert stats["time_step_jitter_ms"] < 1e-6 and lo == pytest.approx(50) and hi == pytest.approx(50)
    elif fps == 30:
        assert (lo, hi) == (pytest.approx(1000 / 30, abs=0.01), pytest.approx(2000 / 30, abs=0.01))
        assert stats["time_step_jitter_ms"] == pytest.approx(500 / 30, abs=0.5)  # steps of 33.3 and 66.7 ms


@pytest.mark.parametrize(
    "name, codec, options",
    [
        ("bframes.mp4", "libx264", {"preset": "medium", "bf": "3", "crf": "18"}),  # decode order != display order
        ("vp9.webm", "libvpx-vp9", None),  # what YouTube often serves; WebM has a 1 ms time base
    ],
)
def test_bframes_and_webm(tmp_path, name, codec, options):
    clip = media.make_clip(tmp_path / name, seconds=1.5, fps=30, codec=codec, codec_options=options)
    stats = frames.extract_frames(clip.path, tmp_path / "o.zarr", FramesConfig())
    assert stats["num_frames"] == 30
    assert decoded_indices(tmp_path / "o.zarr") == expected_indices(clip.times, 30)


def test_29_97_count_uses_exact_duration(tmp_path):
    # 61 frames at 30000/1001 fps last 61*1001/30000 = 2.03536..s -> floor(40.707) = 40 output frames; a
    # pipeline that assumed 30 fps would say 2.0333 s -> 40 too, so also check the 20 fps pick per frame.
    clip = media.make_clip(tmp_path / "c.mp4", seconds=61 * 1001 / 30000, fps=Fraction(30000, 1001))
    assert len(clip.times) == 61
    stats = frames.extract_frames(clip.path, tmp_path / "c.zarr", FramesConfig())
    assert stats["num_frames"] == 40
    assert abs(stats["duration_s"] - 61 * 1001 / 30000) < 1e-9


def test_variable_frame_rate(tmp_path):
    clip = media.make_clip(tmp_path / "vfr.mp4", seconds=2.0, fps=30, vfr=True)
    stats = frames.extract_frames(clip.path, tmp_path / "vfr.zarr", FramesConfig())
    n = math.floor(clip.duration * 20)
    assert stats["num_frames"] == n
    expected = expected_indices(clip.times, n)
    assert decoded_indices(tmp_path / "vfr.zarr") == expected
    # the irregular timestamps matter: assuming a constant 30 fps would pick other frames
    assert expected != [math.floor(k * 30 / 20) for k in range(n)]


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_metadata_comes_out_upright(tmp_path, rotation):
    clip = media.make_clip(tmp_path / "rot.mp4", seconds=0.5, fps=30, width=160, height=96, rotation=rotation)
    stats = frames.extract_frames(clip.path, tmp_path / "rot.zarr", FramesConfig(width=80, height=48))
    assert stats["source_size"] == [160, 96]
    assert stats["rotation"] % 360 == rotation % 360
    assert decoded_indices(tmp_path / "rot.zarr") == expected_indices(clip.times, stats["num_frames"])


def test_store_layout_and_attrs(tmp_path):
    clip = media.make_clip(tmp_path / "v.mp4", seconds=1.0, fps=30, width=160, height=90)
    stats = frames.extract_frames(
        clip.path, tmp_path / "v.zarr", FramesConfig(width=32, height=24, chunk_frames=8), video_id="vid1"
    )
    g = frames.open_frames(tmp_path / "v.zarr")
    assert g["frames"].shape == (20, 24, 32, 3) and g["frames"].dtype == np.uint8
    assert g["frames"].chunks == (8, 24, 32, 3)
    assert g["actions"].shape == (20, 2) and g["actions"].dtype == np.int16
    assert g["has_actions"].dtype == bool and not np.asarray(g["has_actions"]).any()
    assert g["hud_mask"].shape == (24, 32) and g["hud_mask"].dtype == np.uint8
    attrs = dict(g.attrs)
    assert attrs["video_id"] == "vid1" and attrs["fps"] == 20 and attrs["size"] == [32, 24]
    assert attrs["source_size"] == [160, 90] and attrs["num_frames"] == 20
    import hashlib

    assert attrs["content_hash"] == hashlib.sha256(np.asarray(g["frames"]).tobytes()).hexdigest()
    assert stats["content_hash"] == attrs["content_hash"]
    # rerun over an existing store replaces it with identical content
    again = frames.extract_frames(clip.path, tmp_path / "v.zarr", FramesConfig(width=32, height=24, chunk_frames=8))
    assert again["content_hash"] == stats["content_hash"]


def test_resize_geometry_by_hand():
    g = frame_geometry.resize_geometry(160, 90, 64, 64, "letterbox")  # scale 0.4 -> 64x36, 14 px bars
    assert (g.rw, g.rh, g.ox, g.oy) == (64, 36, 0, 14)
    g = frame_geometry.resize_geometry(160, 90, 64, 64, "crop")  # scale 64/90 -> 113.8 -> 114 x 64, 25 px cut left
    assert (g.rw, g.rh, g.ox, g.oy) == (114, 64, -25, 0)
    g = frame_geometry.resize_geometry(160, 90, 64, 64, "squash")
    assert (g.rw, g.rh, g.ox, g.oy) == (64, 64, 0, 0)
    with pytest.raises(ValueError):
        frame_geometry.resize_geometry(160, 90, 64, 64, "stretch")


def test_letterbox_bars_are_masked_and_image_kept(tmp_path):
    clip = media.make_clip(tmp_path / "v.mp4", seconds=0.5, fps=20, width=160, height=90)
    frames.extract_frames(clip.path, tmp_path / "lb.zarr", FramesConfig(resize_mode="letterbox"))
    g = frames.open_frames(tmp_path / "lb.zarr")
    mask = np.asarray(g["hud_mask"])
    assert mask[:14].all() and mask[50:].all() and not mask[14:50].any()
    arr = np.asarray(g["frames"])
    assert (arr[:, :14] == 0).all() and (arr[:, 50:] == 0).all()
    # inside the 64x36 image the barcode of frame i is intact (rows 14..49 hold the whole source)
    for i, img in enumerate(arr):
        assert media.read_frame_index(img[14:50]) == i


def test_crop_keeps_the_centre(tmp_path):
    clip = media.make_clip(tmp_path / "v.mp4", seconds=1.0, fps=20, width=160, height=90)
    frames.extract_frames(clip.path, tmp_path / "c.zarr", FramesConfig(resize_mode="crop"))
    arr = np.asarray(frames.open_frames(tmp_path / "c.zarr")["frames"])
    # source band b spans x in [16b, 16b+16); output x = src_x * 64/90 - 25 -> band centre 11.38 b - 19.3
    for i, img in enumerate(arr):
        for b in (3, 4, 5, 6):
            col = round(11.378 * b - 19.31)
            bit = (i >> (media.BARCODE_BITS - 1 - b)) & 1
            assert (img[8:24, col].mean() > 127) == bool(bit), (i, b)


def brute_force_mask(layout, src_w, src_h, out_w, out_h):
    """Independent squash mask: output pixel (r, c) covers source rect [c*sx, (c+1)*sx) x [r*sy, (r+1)*sy)."""
    hud = HUD_LAYOUTS[layout]
    kx, ky = src_w / hud.reference_size[0], src_h / hud.reference_size[1]
    sx, sy = src_w / out_w, src_h / out_h
    mask = np.zeros((out_h, out_w), np.uint8)
    for r in range(out_h):
        for c in range(out_w):
            for x, y, w, h in hud.boxes.values():
                if c * sx < (x + w) * kx and (c + 1) * sx > x * kx and r * sy < (y + h) * ky and (r + 1) * sy > y * ky:
                    mask[r, c] = 1
    return mask


def test_replay_hud_mask_by_hand():
    g = frame_geometry.resize_geometry(1920, 1080, 64, 64, "squash")
    mask = frame_geometry.hud_mask(g, "replay")
    # minimap (1650, 810, 270, 270) -> x 55..64, y 48..64 exactly
    assert mask[48:, 55:].all() and not mask[47, 30]
    # top scoreboard (385, 0, 1150, 100) -> x 12.83..51.17, y 0..5.93
    assert mask[:6, 12:52].all() and not mask[6:9, 30].any()
    assert not mask[20:40, 10:50].any()  # the middle of the screen is game
    np.testing.assert_array_equal(mask, brute_force_mask("replay", 1920, 1080, 64, 64))
    # a 720p replay gets the same mask (boxes scale with the source)
    np.testing.assert_array_equal(
        frame_geometry.hud_mask(frame_geometry.resize_geometry(1280, 720, 64, 64, "squash"), "replay"), mask
    )
    assert not frame_geometry.hud_mask(g, "none").any()
    with pytest.raises(ValueError, match="hud_layout"):
        frame_geometry.hud_mask(g, "nope")


def test_demo_hud_mask_stored_and_pixels_untouched(tmp_path):
    clip = media.make_clip(tmp_path / "v.mp4", seconds=0.5, fps=20, width=640, height=360)
    plain = frames.extract_frames(clip.path, tmp_path / "a.zarr", FramesConfig())
    masked = frames.extract_frames(clip.path, tmp_path / "b.zarr", FramesConfig(hud_layout="demo"))
    mask = np.asarray(frames.open_frames(tmp_path / "b.zarr")["hud_mask"])
    np.testing.assert_array_equal(mask, brute_force_mask("demo", 640, 360, 64, 64))
    assert masked["mask_coverage"] == pytest.approx(mask.mean(), abs=1e-4) and 0.05 < mask.mean() < 0.3
    assert masked["content_hash"] == plain["content_hash"]  # HUD pixels are masked, never painted


def test_actions_lead_into_their_frame(tmp_path):
    clip = media.make_clip(tmp_path / "v.mp4", seconds=1.0, fps=30)
    # sidecar starts at source frame 6 (t = 0.2 s); a record is in force from its time on
    media.write_actions_sidecar(tmp_path / "v.actions.json", clip.times[6:])
    doc = json.loads((tmp_path / "v.actions.json").read_text())
    for i, rec in enumerate(doc["frames"]):
        rec["move"] = (i + 6) % 9  # move encodes the source frame index
    (tmp_path / "v.actions.json").write_text(json.dumps(doc))
    stats = frames.extract_frames(
        clip.path, tmp_path / "v.zarr", FramesConfig(), actions_path=tmp_path / "v.actions.json"
    )
    g = frames.open_frames(tmp_path / "v.zarr")
    has, acts = np.asarray(g["has_actions"]), np.asarray(g["actions"])
    # Output frame k carries the action pressed during [(k-1)/20, k/20): frame 5's interval is the first that
    # starts inside the log. Each 50 ms interval holds a 30 fps record for 33 ms (the one in force at its middle)
    # and a neighbour for 17 ms: the longer one wins unless it is still (move 0), which never hides a press.
    assert not has[:5].any() and has[5:].all() and (acts[~has] == 0).all()
    times = np.asarray(clip.times)
    for k in range(5, stats["num_frames"]):
        start, end = (k - 1) / 20, k / 20
        longer = int(np.searchsorted(times, (start + end) / 2, side="right")) - 1
        shorter = longer + 1 if times[longer] <= start + 1e-9 else longer - 1
        expected = longer % 9 or shorter % 9
        assert int(acts[k, 0]) == expected, (k, longer, shorter)
    assert g.attrs["action_components"] == ["move", "ability"] and g.attrs["action_num_classes"] == [9, 5]


@pytest.mark.parametrize(
    "content, match",
    [
        ("{not json", "not readable JSON"),
        ('{"fps": 30, "frames": []}', "needs"),
        (
            '{"fps": 30, "components": ["move"], "num_classes": [9], '
            '"frames": [{"t": 0.1, "move": 1}, {"t": 0.05, "move": 2}]}',
            "strictly increasing",
        ),
        ('{"fps": 30, "components": ["move"], "num_classes": [9], "frames": [{"t": 0.0, "move": 12}]}', "record 0"),
        (  # a key the header does not declare is refused, naming the record and the key
            '{"fps": 30, "components": ["move"], "num_classes": [9], '
            '"frames": [{"t": 0.0, "move": 1}, {"t": 0.05, "move": 2, "jump": 1}]}',
            "frame record 1 has key 'jump' that the header does not declare",
        ),
    ],
)
def test_corrupt_actions_sidecar(tmp_path, content, match):
    clip = media.make_clip(tmp_path / "v.mp4", seconds=0.5, fps=20)
    sidecar = tmp_path / "v.actions.json"
    sidecar.write_text(content)
    store = tmp_path / "v.zarr"
    with pytest.raises(FramesError, match=match) as err:
        frames.extract_frames(clip.path, store, FramesConfig(), actions_path=sidecar)
    assert str(sidecar) in str(err.value)
    assert no_leftovers(store)
    media.write_actions_sidecar(sidecar, clip.times)  # fixed -> works
    # every frame but the first (nothing led into it) is labelled
    assert frames.extract_frames(clip.path, store, FramesConfig(), actions_path=sidecar)["has_actions_fraction"] == 0.9


def _good_clip(path):
    return media.make_clip(path, seconds=0.5, fps=20, width=64, height=48)


@pytest.mark.parametrize(
    "kind, match",
    [
        ("empty", "empty file"),
        ("truncated", "not a readable video|decoding failed"),
        ("truncated_faststart", "truncated or corrupt: decoded"),
        ("text", "not a readable video"),
        ("audio", "no video stream"),
        ("tiny", "too small"),
        ("missing", "no such file"),
    ],
)
def test_bad_inputs_fail_clearly_and_recover(tmp_path, kind, match):
    video = tmp_path / "bad.mp4"
    if kind == "empty":
        video.write_bytes(b"")
    elif kind == "truncated":
        _good_clip(video)
        data = video.read_bytes()
        video.write_bytes(data[: len(data) // 2])
    elif kind == "truncated_faststart":  # the index comes first, so the cut file opens and stops early
        media.make_clip(video, seconds=2.0, fps=20, width=64, height=48, faststart=True)
        data = video.read_bytes()
        video.write_bytes(data[: len(data) // 2])
    elif kind == "text":
        video.write_text("this is not a video\n" * 50)
    elif kind == "audio":
        media.make_audio_only(video, seconds=0.5)
    elif kind == "tiny":
        media.make_clip(video, seconds=0.5, fps=20, width=16, height=16)
    store = tmp_path / "out.zarr"
    with pytest.raises(FramesError, match=match) as err:
        frames.extract_frames(video, store, FramesConfig())
    assert str(video) in str(err.value)
    assert no_leftovers(store)
    _good_clip(video)  # the input is fixed -> rerun works
    assert frames.extract_frames(video, store, FramesConfig())["num_frames"] == 10


def test_tiny_video_allowed_when_configured(tmp_path):
    clip = media.make_clip(tmp_path / "t.mp4", seconds=0.5, fps=20, width=16, height=16)
    stats = frames.extract_frames(clip.path, tmp_path / "t.zarr", FramesConfig(min_source_side=8))
    assert stats["num_frames"] == 10 and stats["source_size"] == [16, 16]


def test_stale_temp_dirs_removed(tmp_path):
    """A killed run's temp store goes; a live writer's (another video's, in the same folder) stays."""
    import subprocess

    clip = _good_clip(tmp_path / "v.mp4")
    here = files.host_tag()
    stale = tmp_path / f".v.tmp-{here}-999999999-0123abcd.zarr"  # a pid that cannot be alive
    stale.mkdir()
    (stale / "junk").write_text("x")
    writer = subprocess.Popen(["sleep", "30"])
    try:
        live = tmp_path / f".x.tmp-{here}-{writer.pid}-89abcdef.zarr"
        live.mkdir()
        frames.extract_frames(clip.path, tmp_path / "v.zarr", FramesConfig())
        assert not stale.exists() and live.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [f".x.tmp-{here}-{writer.pid}-89abcdef.zarr", "v.mp4", "v.zarr"]
        )
    finally:
        writer.kill()


def test_black_and_frozen_checks(tmp_path):
    def check(pattern):
        clip = media.make_clip(tmp_path / f"{pattern}.mp4", seconds=1.0, fps=20, pattern=pattern)
        frames.extract_frames(clip.path, tmp_path / f"{pattern}.zarr", FramesConfig())
        return frames.check_not_black_or_frozen(tmp_path / f"{pattern}.zarr")

    passed, details = check("dark")  # black but moving: only the intensity test can catch it
    assert not passed and details["frozen_fraction"] == 0.0 and details["mean_intensity"] < 0.05, details
    passed, details = check("frozen")  # bright but frozen: only the frozen test can catch it
    assert not passed and details["frozen_fraction"] == 1.0 and details["mean_intensity"] > 0.2, details
    passed, details = check("moving")
    assert passed and details["frozen_fraction"] == 0.0


def test_frame_count_check_catches_short_decode():
    good = {"num_frames": 40, "fps": 20, "container_duration_s": 2.0}
    assert frames.check_frame_count(good)[0]
    assert not frames.check_frame_count({**good, "num_frames": 30})[0]


def test_4k_memory_stays_bounded(tmp_path):
    clip = media.make_clip(tmp_path / "4k.mp4", seconds=2.0, fps=10, width=3840, height=2160)
    script = textwrap.dedent("""
        import resource, sys
        from ahriuwu_core.data import frames
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        st = frames.extract_frames(sys.argv[1], sys.argv[2], frames.FramesConfig(decode_threads=2))
        print(st["num_frames"], (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
    """)
    out = subprocess.run(
        [sys.executable, "-c", script, str(clip.path), str(tmp_path / "4k.zarr")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    num_frames, growth_mb = int(out[0]), float(out[1])
    assert num_frames == 40
    # 20 decoded 4K frames held at once would add >= 250 MB (12 MB each as yuv420p); streaming measured ~110 MB
    assert growth_mb < 180, growth_mb


def test_jsonl_sidecar_and_frames_after_its_last_record(tmp_path):
    """JSON Lines: a header line, then one record per line. A log that covers 0.5 s of a 1.5 s clip labels the
    frames it covers and leaves the rest unlabelled -- unless the header says the last action holds."""
    clip = media.make_clip(tmp_path / "v.mp4", seconds=1.5, fps=20)
    header = {"components": ["key"], "num_classes": [17]}
    records = [{"t": i / 20, "key": (3 * i) % 17} for i in range(10)]  # 0.0 .. 0.45 s, every 50 ms
    for hold in (False, True):
        path = tmp_path / f"v{int(hold)}.actions.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in [{**header, "hold_last": hold}] + records) + "\n")
        frames.extract_frames(clip.path, tmp_path / f"v{int(hold)}.zarr", FramesConfig(), actions_path=path)
        g = frames.open_frames(tmp_path / f"v{int(hold)}.zarr")
        has, acts = np.asarray(g["has_actions"]), np.asarray(g["actions"])
        assert acts.shape == (30, 1) and g.attrs["action_num_classes"] == [17]
        assert [int(a) for a in acts[1:11, 0]] == [(3 * i) % 17 for i in range(10)]  # frame k: record k-1
        assert has[1:11].all() and not has[0]
        assert has[11:].all() if hold else not has[11:].any()  # the log ended at 0.5 s
    bad = tmp_path / "bad.actions.jsonl"
    bad.write_text(json.dumps({"t": 0.0, "key": 1}) + "\n")
    with pytest.raises(FramesError, match="header") as err:
        frames.extract_frames(clip.path, tmp_path / "bad.zarr", FramesConfig(), actions_path=bad)
    assert str(bad) in str(err.value)
    bad.write_text(json.dumps(header) + "\n" + json.dumps({"t": 0.0, "key": 17}) + "\n")
    with pytest.raises(FramesError, match="record 0"):
        frames.extract_frames(clip.path, tmp_path / "bad.zarr", FramesConfig(), actions_path=bad)


def test_disk_full_names_the_output_not_the_video(tmp_path, monkeypatch):
    import errno

    video, store = tmp_path / "good.mp4", tmp_path / "out.zarr"
    _good_clip(video)
    calls = []

    def full(self, n):
        calls.append(n)
        raise OSError(errno.ENOSPC, "No space left on device", str(store))

    monkeypatch.setattr(frame_stream.ChunkWriter, "_write", full)
    with pytest.raises(FramesError) as err:
        frames.extract_frames(video, store, FramesConfig())
    msg = str(err.value)
    assert msg.startswith(f"no space left on device writing {store}") and "decoding failed" not in msg
    assert len(calls) == 1 and no_leftovers(store)
