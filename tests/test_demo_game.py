"""Tests for the built-in demo game: determinism, the actions sidecar matching the rendered/encoded video, scroll
estimation, HUD cooldowns, atomic + idempotent writing. Clips are short (<= 3 s) to keep the file fast."""

import json
import math
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from ahriuwu_core.data.conventions import MOVE_VECTORS, move_from_vector
from ahriuwu_core.demo.__main__ import main
from ahriuwu_core.demo.game import DemoGame
from ahriuwu_core.demo.hud import (
    DEMO_HUD_REGIONS,
    ability_icon_rects,
    find_minimap_marker,
    hud_regions,
    minimap_marker_position,
)
from ahriuwu_core.demo.map import WORLD_SIZE
from ahriuwu_core.demo.motion import estimate_scroll
from ahriuwu_core.demo.policy import play_demo
from ahriuwu_core.demo.video import DemoConfig, write_demo_videos

CLIP = DemoConfig(num_videos=1, duration_s=3.0, seed=1)


def decode(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate
        frames = [f for f in container.decode(video=0)]
        return rate, [f.to_ndarray(format="rgb24") for f in frames], [f.time for f in frames]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    [mp4] = write_demo_videos(out, CLIP, log=lambda s: None)
    sidecar = json.loads(mp4.with_name("demo_000.actions.json").read_text())
    rate, frames, times = decode(mp4)
    return {"dir": out, "mp4": mp4, "sidecar": sidecar, "rate": rate, "frames": frames, "times": times}


def test_move_convention_counter_clockwise_from_east_with_y_down():
    # Hand-written table: N is up on screen (negative y), diagonals are unit length.
    h = 1 / math.sqrt(2)
    expected = [(0, 0), (1, 0), (h, -h), (0, -1), (-h, -h), (-1, 0), (-h, h), (0, 1), (h, h)]
    np.testing.assert_allclose(MOVE_VECTORS, expected, atol=1e-12)
    assert [
        move_from_vector(*v) for v in [(5, 0), (3, -3), (0, -2), (-1, -1), (-4, 0), (-2, 2), (0, 7), (1, 1)]
    ] == list(range(1, 9))
    assert move_from_vector(0, 0) == 0
    assert move_from_vector(10, -3) == 1  # 16.7 degrees rounds to east


def test_hud_regions_scale_with_frame_size():
    assert hud_regions(640, 360) == DEMO_HUD_REGIONS
    assert hud_regions(1280, 720)["minimap"] == (1056, 496, 224, 224)
    assert hud_regions(64, 64)["abilities_health"] == (19, 55, 26, 9)  # 19.2->19, 312*64/360=55.47->55, ...


def test_same_seed_is_byte_identical_and_other_seeds_differ():
    a = list(play_demo(5, 30))
    b = list(play_demo(5, 30))
    c = list(play_demo(6, 30))
    assert [x[1:] for x in a] == [x[1:] for x in b]
    for i in (0, 15, 29):
        assert a[i][0].tobytes() == b[i][0].tobytes()
    assert a[0][0].shape == (360, 640, 3) and a[0][0].dtype == np.uint8
    assert a[0][0].tobytes() != c[0][0].tobytes()
    assert [x[1:3] for x in a] != [x[1:3] for x in c] or a[0][3] != c[0][3]


def test_sidecar_has_one_record_per_source_frame_and_video_matches_config(clip):
    side, n = clip["sidecar"], 120
    assert side["fps"] == 40.0 and side["components"] == ["move", "ability"] and side["num_classes"] == [9, 5]
    assert len(side["frames"]) == n and len(clip["frames"]) == n
    for i, rec in enumerate(side["frames"]):
        assert rec["t"] == pytest.approx(i / 40.0, abs=1e-9)
        assert 0 <= rec["move"] <= 8 and 0 <= rec["ability"] <= 4
    assert clip["rate"] == 40
    assert clip["times"] == pytest.approx([i / 40.0 for i in range(n)], abs=1e-3)
    assert clip["frames"][0].shape == (360, 640, 3)


def test_recorded_moves_are_exactly_the_motion_between_frames(clip):
    # Convention: the move at frame i moves the player between frame i and frame i+1 by speed/fps px.
    side = clip["sidecar"]
    xy = np.asarray(side["player_world_xy"])
    step = CLIP.player_speed / CLIP.fps
    for i, rec in enumerate(side["frames"][:-1]):
        np.testing.assert_allclose(xy[i + 1] - xy[i], MOVE_VECTORS[rec["move"]] * step, atol=2e-3)


def test_minimap_marker_in_decoded_video_follows_recorded_moves(clip):
    side, frames = clip["sidecar"], clip["frames"]
    moves = [r["move"] for r in side["frames"]]
    marker = np.array([find_minimap_marker(f) for f in frames])
    # The marker found in the lossy video sits where the renderer drew it.
    drawn = np.array([minimap_marker_position(p) for p in side["player_world_xy"]])
    assert np.abs(marker - drawn).max() < 0.5
    # Runs of one move: the marker moves in that direction by speed/fps * run_length * (map px per world px).
    inner_w = DEMO_HUD_REGIONS["minimap"][2] - 8
    runs, start = [], 0
    for i in range(1, len(moves) + 1):
        if i == len(moves) or moves[i] != moves[start]:
            runs.append((moves[start], start, i))  # frames start..i-1 share the move; motion ends at frame i
            start = i
    checked = {"still": 0, "moving": 0}
    for move, s, e in runs:
        if e >= len(frames) or e - s < 6:
            continue
        disp = marker[e] - marker[s]
        if move == 0:
            assert np.abs(disp).max() < 0.3, (move, s, e, disp)
            checked["still"] += 1
        else:
            expected = MOVE_VECTORS[move] * CLIP.player_speed / CLIP.fps * (e - s) * inner_w / WORLD_SIZE
            for k in range(2):
                if abs(expected[k]) > 1:
                    assert np.sign(disp[k]) == np.sign(expected[k]), (move, s, e, disp)
                assert abs(disp[k] - expected[k]) < 0.3 + 0.15 * abs(expected[k]), (move, s, e, disp, expected)
            checked["moving"] += 1
    assert checked["still"] >= 1 and checked["moving"] >= 2, (checked, runs)


def test_estimate_scroll_sign_convention_on_a_rolled_texture():
    rng = np.random.default_rng(0)
    base = np.asarray(Image.fromarray(rng.integers(0, 255, (45, 80, 3), dtype=np.uint8)).resize((640, 360)))
    shifted = np.roll(base, shift=(-4, 7), axis=(0, 1))  # content moves right 7 px and up 4 px
    dx, dy = estimate_scroll(base, shifted)
    assert dx == pytest.approx(7, abs=0.3) and dy == pytest.approx(-4, abs=0.3)


@pytest.mark.parametrize("move", [1, 2, 7, 0])
def test_estimate_scroll_follows_the_player_motion_full_size_and_64x64(move):
    game = DemoGame(11)
    frames = [game.play(move, 0) for _ in range(7)]
    step = game.speed / game.fps
    expected = -MOVE_VECTORS[move] * step * 6  # the map scrolls opposite to the player's motion
    dx, dy = estimate_scroll(frames[0], frames[6])
    assert dx == pytest.approx(expected[0], abs=1.0) and dy == pytest.approx(expected[1], abs=1.0)
    small = [np.asarray(Image.fromarray(f).resize((64, 64), Image.BILINEAR)) for f in (frames[0], frames[6])]
    dx, dy = estimate_scroll(*small)
    assert dx == pytest.approx(expected[0] * 64 / 640, abs=0.5)
    assert dy == pytest.approx(expected[1] * 64 / 360, abs=0.5)


def test_rendered_marker_matches_world_position_and_moves_with_the_player():
    game = DemoGame(3)
    pos0 = game.player_world_position  # the position frame 0 is rendered at
    f0 = game.play(1, 0)
    for _ in range(29):
        f = game.play(1, 0)
    x0, y0 = find_minimap_marker(f0)
    x1, y1 = find_minimap_marker(f)
    assert (x0, y0) == pytest.approx(minimap_marker_position(pos0), abs=0.15)
    # 29 frames east at 200/40 px: 145 world px = 145 * 104 / 2048 = 7.36 minimap px.
    assert x1 - x0 == pytest.approx(145.0 * 104 / 2048, abs=0.3) and y1 == pytest.approx(y0, abs=0.2)
    # A half-size resize still finds it; width/height rescale the answer to the render's coordinates.
    half = np.asarray(Image.fromarray(f0).resize((320, 180), Image.BILINEAR))
    hx, hy = find_minimap_marker(half)
    assert (hx, hy) == pytest.approx((x0 / 2, y0 / 2), abs=0.3)
    assert find_minimap_marker(half, 640, 360) == pytest.approx((hx * 2, hy * 2))


def _saturation(frame, rect):
    x, y, w, h = rect
    patch = frame[y : y + h, x : x + w].astype(int)
    return float((patch.max(axis=-1) - patch.min(axis=-1)).mean())


def test_ability_icon_is_greyed_during_cooldown_and_recast_is_refused():
    game = DemoGame(7)
    rects = ability_icon_rects()
    ready = game.play(0, 0)
    assert all(_saturation(ready, r) > 25 for r in rects)
    before = game.play(0, 2)  # frame 1 is drawn before its action acts: the icon is still ready
    assert _saturation(before, rects[1]) > 25
    cast = game.play(0, 0)  # frame 2 is the first to show the cast
    assert _saturation(cast, rects[1]) == 0.0  # grey: r == g == b
    assert all(_saturation(cast, r) > 25 for k, r in enumerate(rects) if k != 1)
    assert not np.array_equal(cast, before)
    with pytest.raises(ValueError, match="cooldown"):
        game.play(0, 2)
    for _ in range(int(3.5 * 40) - 2):  # frames 3 .. 140
        game.play(0, 0)
    with pytest.raises(ValueError, match="1 frames left"):
        game.play(0, 2)
    game.play(0, 0)  # frame 141: the last one greyed
    assert _saturation(game.play(0, 2), rects[1]) > 25  # frame 142: ready again after 3.5 s, cast again
    assert _saturation(game.play(0, 0), rects[1]) == 0.0


def test_decoded_video_shows_the_recorded_casts_as_greyed_icons(clip):
    rects = ability_icon_rects()
    casts = [(i, r["ability"]) for i, r in enumerate(clip["sidecar"]["frames"]) if r["ability"]]
    assert casts, "the test clip should contain casts"
    for i, ability in casts:
        rect = rects[ability - 1]
        assert _saturation(clip["frames"][i], rect) > 25, (i, ability)  # frame i is drawn before action i acts
        if i + 1 < len(clip["frames"]):
            assert _saturation(clip["frames"][i + 1], rect) < 8, (i, ability)  # grey from the next frame on


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="641x360"):
        DemoGame(0, width=641)
    with pytest.raises(ValueError, match="move=9"):
        DemoGame(0).play(9, 0)
    with pytest.raises(ValueError, match="HxWx3"):
        find_minimap_marker(np.zeros((360, 640), np.uint8))
    with pytest.raises(ValueError, match="no frames"):
        write_demo_videos("/tmp/never_written_demo", DemoConfig(num_videos=1, duration_s=0.0))


def test_failed_write_leaves_nothing_behind(tmp_path):
    with pytest.raises(ValueError, match="642x361"):  # fails after the encoder thread started
        write_demo_videos(tmp_path, DemoConfig(num_videos=1, duration_s=0.5, width=642, height=361), log=print)
    assert list(tmp_path.iterdir()) == []


def test_writing_is_idempotent_and_leaves_no_temp_files(clip):
    out = clip["dir"]
    mp4, side = out / "demo_000.mp4", out / "demo_000.actions.json"
    before = (mp4.stat().st_mtime_ns, side.stat().st_mtime_ns)
    write_demo_videos(out, CLIP, log=lambda s: None)
    assert (mp4.stat().st_mtime_ns, side.stat().st_mtime_ns) == before
    assert sorted(p.name for p in out.iterdir()) == ["demo_000.actions.json", "demo_000.mp4"]


def test_cli_writes_videos_and_changed_settings_rewrite(tmp_path):
    main([str(tmp_path), "--num-videos", "2", "--duration", "0.5", "--fps", "29.97"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "demo_000.actions.json",
        "demo_000.mp4",
        "demo_001.actions.json",
        "demo_001.mp4",
    ]
    rate, frames, times = decode(tmp_path / "demo_001.mp4")
    side = json.loads((tmp_path / "demo_001.actions.json").read_text())
    assert rate == Fraction(2997, 100) and len(frames) == len(side["frames"]) == 15  # round(0.5 * 29.97)
    assert times == pytest.approx([i / 29.97 for i in range(15)], abs=1e-3)
    assert side["frames"][14]["t"] == pytest.approx(14 / 29.97)
    old = (tmp_path / "demo_000.mp4").stat().st_mtime_ns
    main([str(tmp_path), "--num-videos", "1", "--duration", "0.4", "--fps", "29.97"])
    assert (tmp_path / "demo_000.mp4").stat().st_mtime_ns != old
    assert len(json.loads((tmp_path / "demo_000.actions.json").read_text())["frames"]) == 12


def test_stored_action_of_frame_t_predicts_the_scroll_from_t_minus_1_to_t(clip, tmp_path):
    """The convention end to end on demo data: through the frames stage (40 fps -> 20 fps, 64x64), the action a
    frame carries is the move that scrolled the view into it -- and the previous frame's action is worse."""
    from ahriuwu_core.data.conventions import MOVE_UNIT
    from ahriuwu_core.data.frames import FramesConfig, extract_frames, open_frames

    sidecar = clip["mp4"].with_name("demo_000.actions.json")
    stats = extract_frames(clip["mp4"], tmp_path / "f.zarr", FramesConfig(hud_layout="demo"), actions_path=sidecar)
    assert stats["time_step_jitter_ms"] < 1e-6  # 40 fps source: every output step is 50 ms
    g = open_frames(tmp_path / "f.zarr")
    frames, moves, has = np.asarray(g["frames"]), np.asarray(g["actions"])[:, 0], np.asarray(g["has_actions"])
    assert not has[0] and has[1:].all()

    def agreement(lag):
        hits = total = 0
        for t in range(1 + lag, len(frames)):
            move = int(moves[t - lag])
            if move == 0:
                continue
            dx, dy = estimate_scroll(frames[t - 1], frames[t])
            ux, uy = MOVE_UNIT[move]
            total += 1
            hits += (-ux * dx - uy * dy) / max(math.hypot(dx, dy), 1e-9) >= math.cos(math.radians(45))
        return hits / total

    now, before = agreement(0), agreement(1)
    assert now >= 0.95, now
    assert now > before or before < 0.95


def test_every_cast_is_labelled_on_the_first_stored_frame_that_shows_it(clip, tmp_path):
    """Through the frames stage (40 -> 20 fps), a cast logged on either source frame of an output frame's interval
    lands on that output frame, and that frame is the first to show the icon greyed."""
    from ahriuwu_core.data.frames import FramesConfig, extract_frames, open_frames

    sidecar = clip["mp4"].with_name("demo_000.actions.json")
    cfg = FramesConfig(width=CLIP.width, height=CLIP.height, hud_layout="demo")  # full size: icons readable
    stats = extract_frames(clip["mp4"], tmp_path / "f.zarr", cfg, actions_path=sidecar)
    g = open_frames(tmp_path / "f.zarr")
    frames, abilities = np.asarray(g["frames"]), np.asarray(g["actions"])[:, 1]
    casts = [(i, r["ability"]) for i, r in enumerate(clip["sidecar"]["frames"]) if r["ability"]]
    assert {i % 2 for i, _ in casts} == {0, 1}, casts  # the clip has casts on both source frames of an interval
    assert all(i // 2 + 1 < stats["num_frames"] for i, _ in casts)  # time i/40 lies in frame i//2+1's interval
    assert np.count_nonzero(abilities) == len(casts)  # none lost, none repeated
    rects = ability_icon_rects()
    for i, ability in casts:
        k = i // 2 + 1
        assert abilities[k] == ability, (i, k, abilities[k - 1 : k + 2])
        assert _saturation(frames[k - 1], rects[ability - 1]) > 25, (i, k)  # still ready on the frame before
        assert _saturation(frames[k], rects[ability - 1]) < 8, (i, k)  # greyed on the labelled frame
