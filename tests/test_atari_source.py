"""The built-in Atari source: games recorded with ale-py at 60 Hz with their actions, listed without recording,
recorded when fetched, and taken through the real `videos` and `frames` stages."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import av
import numpy as np
import pytest
from dagster import AssetSelection, DagsterInstance, materialize

from ahriuwu_core import sources
from ahriuwu_core.data.layout import DataLayout
from ahriuwu_core.data.sidecar import load_actions
from ahriuwu_core.sources import atari
from tests._instance import scratch_project

SHORT = atari.AtariConfig(games=("breakout",), videos_per_game=1, duration_s=2.0)


def _decoded(path) -> tuple[list[np.ndarray], list[float], object]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = [(f.to_ndarray(format="rgb24"), float(f.time)) for f in c.decode(stream)]
        return [f for f, _ in frames], [t for _, t in frames], stream.average_rate


def _sidecar(path) -> dict:
    return json.loads(path.with_name(path.stem + ".actions.json").read_text())


@pytest.mark.parametrize("game", ["breakout", "ms_pacman", "riverraid"])
def test_a_recording_is_a_60fps_mp4_with_one_action_record_per_frame(tmp_path, game):
    cfg = replace(SHORT, games=(game,))
    [path] = atari.atari_video_paths(tmp_path, cfg)
    atari.write_atari_video(path, cfg)
    frames, times, rate = _decoded(path)
    assert rate == 60 and len(frames) == 120 and frames[0].shape == (210, 160, 3)
    doc = _sidecar(path)
    names = [a.name for a in atari.emulator(game, 0).getMinimalActionSet()]
    assert doc["components"] == ["action"] and doc["num_classes"] == [len(names)] and doc["action_names"] == names
    assert [r["t"] for r in doc["frames"]] == pytest.approx(times)  # record k belongs to the frame shown at k/60
    actions = load_actions(path.with_name(path.stem + ".actions.json"))
    assert actions["values"].shape == (120, 1) and len(np.unique(actions["values"])) > 1


def test_replaying_the_sidecar_in_the_emulator_gives_the_video_frame_for_frame(tmp_path):
    cfg = replace(SHORT, games=("riverraid",))
    [path] = atari.atari_video_paths(tmp_path, cfg)
    atari.write_atari_video(path, cfg)
    decoded, _, _ = _decoded(path)
    actions = [r["action"] for r in _sidecar(path)["frames"]]
    ale = atari.emulator("riverraid", atari.video_seed(cfg, "riverraid", 0))
    replay = [s.astype(np.int16) for s, _ in atari.play(ale, actions, len(actions))]
    decoded = [f.astype(np.int16) for f in decoded]
    # Frame k is nearer replayed screen k than its neighbours (lossy encoding: nearest, not equal); a video
    # shifted by one frame against its sidecar would be nearer a neighbour wherever the screen moves.
    moved = 0
    for k in range(1, len(decoded) - 1):
        here, before, after = (float(np.abs(decoded[k] - replay[j]).mean()) for j in (k, k - 1, k + 1))
        assert here <= min(before, after), (k, here, before, after)
        moved += here < min(before, after)
    assert moved > len(decoded) // 2


def test_the_same_settings_record_the_same_game(tmp_path):
    first, second = (atari.atari_video_paths(tmp_path / name, SHORT)[0] for name in ("a", "b"))
    for path in (first, second):
        atari.write_atari_video(path, SHORT)
    assert _sidecar(first)["frames"] == _sidecar(second)["frames"]
    for a, b in zip(_decoded(first)[0][:10], _decoded(second)[0][:10]):
        assert np.array_equal(a, b)
    other = replace(SHORT, seed=1)
    assert atari.video_seed(other, "breakout", 0) != atari.video_seed(SHORT, "breakout", 0)
    assert atari.video_seed(SHORT, "breakout", 0) != atari.video_seed(SHORT, "breakout", 1)


def test_an_action_shows_only_in_the_frames_after_its_record():
    """Breakout's FIRE launches the ball in the very frame emulated with it: pressed at step j, the screens
    differ from a no-FIRE run first at frame j+1. Frame j (time j/60, the record's) is the screen FIRE starts
    from; writing the screen after the step instead would make them differ at frame j."""
    j, n = 90, 100
    runs = []
    for fire_at in (None, j):
        actions = [1 if k == fire_at else 0 for k in range(n)]  # minimal set: 0 NOOP, 1 FIRE
        runs.append([s for s, _ in atari.play(atari.emulator("breakout", 0), actions, n)])
    differ = [k for k in range(n) if not np.array_equal(runs[0][k], runs[1][k])]
    assert differ and differ[0] == j + 1


def test_the_listing_records_nothing_and_the_fetch_records_the_video(tmp_path):
    cfg = replace(SHORT, games=("breakout", "ms_pacman"), videos_per_game=2)
    source = sources.SourceConfig(kind="atari", atari=cfg)
    start = time.perf_counter()
    entries = sources.list_videos(source, tmp_path, log=lambda m: None)
    assert time.perf_counter() - start < 2
    assert [e.video_id for e in entries] == ["breakout_000", "breakout_001", "ms_pacman_000", "ms_pacman_001"]
    atari_dir = DataLayout(tmp_path).atari_source
    assert not atari_dir.exists() or not list(atari_dir.glob("*.mp4"))
    sources.fetch_video(entries[2], tmp_path / "videos", source, log=lambda m: None)
    assert sorted(p.name for p in atari_dir.iterdir()) == ["ms_pacman_000.actions.json", "ms_pacman_000.mp4"]
    assert (tmp_path / "videos" / "ms_pacman_000" / "actions.json").exists()


def test_a_video_recorded_with_other_settings_is_recorded_again(tmp_path):
    atari_dir = DataLayout(tmp_path).atari_source
    [path] = atari.atari_video_paths(atari_dir, SHORT)
    atari.write_atari_video(path, SHORT)
    other = replace(SHORT, sticky_prob=0.5)
    source = sources.SourceConfig(kind="atari", atari=other)
    logged = []
    [entry] = sources.list_videos(source, tmp_path, log=logged.append)
    assert not path.exists() and any("other settings" in m for m in logged)
    again = sources.list_videos(sources.SourceConfig(kind="atari", atari=SHORT), tmp_path, log=logged.append)
    assert [e.video_id for e in again] == ["breakout_000"]  # nothing there to discard
    sources.fetch_video(entry, tmp_path / "videos", source, log=lambda m: None)
    assert _sidecar(path)["atari"]["sticky_prob"] == 0.5


def test_an_unknown_game_names_itself_and_some_known_ones():
    with pytest.raises(ValueError, match=r"unknown Atari game 'space_wars'.*breakout.*ms_pacman"):
        atari.AtariConfig(games=("breakout", "space_wars"))
    with pytest.raises(ValueError, match="at least one game"):
        atari.AtariConfig(games=())


def test_the_project_reads_the_atari_source_and_its_settings(monkeypatch):
    from pipeline.resources import ProjectResource

    monkeypatch.setenv("AHRIUWU_SOURCE", "atari:breakout, ms_pacman,riverraid")
    monkeypatch.setenv("AHRIUWU_ATARI_VIDEOS", "2")
    monkeypatch.setenv("AHRIUWU_ATARI_SECONDS", "1.5")
    project = ProjectResource()
    cfg = project.source_config()
    assert cfg.kind == "atari" and cfg.atari.games == ("breakout", "ms_pacman", "riverraid")
    assert (cfg.atari.videos_per_game, cfg.atari.duration_s) == (2, 1.5)
    assert not project.is_demo and project.preset_config().frames.hud_layout == "none"
    monkeypatch.delenv("AHRIUWU_ATARI_VIDEOS")
    monkeypatch.delenv("AHRIUWU_ATARI_SECONDS")
    assert ProjectResource(atari_videos=3).source_config().atari.videos_per_game == 3
    assert ProjectResource().source_config().atari.duration_s == 30.0


def test_an_atari_video_goes_through_the_videos_and_frames_stages(tmp_path, monkeypatch):
    from pipeline.assets import frames, videos
    from pipeline.definitions import ALL_ASSETS
    from pipeline.demo import register_source
    from pipeline.resources import resources_from_env

    _, data_root = scratch_project(tmp_path, tmp_path / "unused", monkeypatch)
    for key, value in {
        "AHRIUWU_SOURCE": "atari:breakout",
        "AHRIUWU_ATARI_VIDEOS": "1",
        "AHRIUWU_ATARI_SECONDS": "2",
    }.items():
        monkeypatch.setenv(key, value)
    with DagsterInstance.get() as instance:
        resources = resources_from_env()
        assert register_source(instance, resources, log=lambda m: None) == ["breakout_000"]
        done = materialize(
            ALL_ASSETS,
            selection=AssetSelection.assets(videos, frames),
            instance=instance,
            resources=resources,
            partition_key="breakout_000",
        )
        assert done.success
        # (not_black_or_frozen, a warning, fails here: at 64x64 Breakout's paddle moves less than its threshold)
        assert {e.check_name: e.passed for e in done.get_asset_check_evaluations()}["frame_count"]
    meta = done.asset_materializations_for_node("videos")[0].metadata
    assert (meta["fps"].value, meta["width"].value, meta["height"].value) == (60, 160, 210)
    from ahriuwu_core.data.frames import open_frames

    layout = DataLayout(data_root)
    store = open_frames(layout.frames_store("breakout_000"))
    assert store.attrs["num_frames"] == 40 and store.attrs["action_num_classes"] == [4]
    # 20 fps frame k covers the 60 Hz records 3(k-1) .. 3(k-1)+2: the non-NOOP action held longest among them
    # (the later one on a tie), NOOP only when all three are.
    records = [r["action"] for r in _sidecar(layout.atari_source / "breakout_000.mp4")["frames"]]

    def expected(k):
        pressed = [a for a in records[3 * (k - 1) : 3 * k] if a != 0]
        return max(reversed(pressed), key=pressed.count) if pressed else 0

    has = np.asarray(store["has_actions"])
    assert not has[0] and has[1:].all()
    assert np.asarray(store["actions"])[1:, 0].tolist() == [expected(k) for k in range(1, 40)]
