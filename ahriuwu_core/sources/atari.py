"""The built-in Atari games as a source: each video is one game played by a sticky-random policy in the Arcade
Learning Environment (ale-py, which ships the ROMs), recorded at the console's 60 Hz with its actions sidecar.

Video `<game>_<k>.mp4` (e.g. `breakout_000.mp4`) has `<game>_<k>.actions.json` beside it: one component,
"action", whose classes index the game's minimal action set (`action_names`), one record per emulator frame, and
`atari`, the settings it was recorded with (a video recorded with other settings is recorded again).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ahriuwu_core.data.files import atomic_path, write_json

FPS = 60  # the console's frame rate; with frame_skip 1 every emulator frame is a video frame
RECORDER_VERSION = 1  # bump when a change here changes what a recording holds


@dataclass
class AtariConfig:
    games: tuple[str, ...] = ("breakout",)  # ALE ROM ids: breakout, ms_pacman, riverraid, pong, enduro, ...
    videos_per_game: int = 12  # enough for the full split: 2 validation and 4 test videos per game
    duration_s: float = 30.0
    seed: int = 0
    sticky_prob: float = 0.9  # the policy repeats its previous action with this probability each frame
    crf: int = 20
    preset: str = "veryfast"

    def __post_init__(self):
        self.games = tuple(self.games)
        if not self.games:
            raise ValueError("the atari source needs at least one game, e.g. atari:breakout")
        for game in self.games:
            rom_path(game)

    @property
    def num_frames(self) -> int:
        return int(round(self.duration_s * FPS))


def rom_path(game: str) -> Path:
    """The ROM of an ALE game id; ValueError naming the game and some that exist otherwise."""
    from ale_py import roms

    available = roms.get_all_rom_ids()
    if game not in available:
        raise ValueError(
            f"unknown Atari game {game!r}: the ALE's ROM ids are lowercase, e.g. breakout, "
            f"ms_pacman, riverraid, pong, enduro ({len(available)} in all: ale_py.roms.get_all_rom_ids())"
        )
    return roms.get_rom_path(game)


def video_seed(cfg: AtariConfig, game: str, k: int) -> int:
    """A stable 31-bit seed per video (Python's hash() of a str changes between processes)."""
    digest = hashlib.sha256(f"{cfg.seed}/{game}/{k}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def sticky_random_actions(seed: int, num_actions: int, sticky_prob: float) -> Iterator[int]:
    """Endless action indices: each frame keeps the previous one with probability sticky_prob, else draws anew."""
    rng = np.random.default_rng(seed)
    action = int(rng.integers(num_actions))
    while True:
        yield action
        if rng.random() >= sticky_prob:
            action = int(rng.integers(num_actions))


def emulator(game: str, seed: int):
    """The game loaded in a fresh ALE, seeded, every frame emulated, no sticky actions of its own."""
    from ale_py import ALEInterface, LoggerMode

    ALEInterface.setLoggerMode(LoggerMode.Error)  # no banner on every load
    ale = ALEInterface()
    ale.setInt("random_seed", seed)
    ale.setFloat("repeat_action_probability", 0.0)  # stickiness is the policy's, in the sidecar
    ale.setInt("frame_skip", 1)
    ale.loadROM(str(rom_path(game)))
    return ale


def play(ale, actions: Iterable[int], num_frames: int) -> Iterator[tuple[np.ndarray, int]]:
    """(screen, action) per emulator frame k, actions indexing the minimal action set: the screen that action k
    starts from, so its effect can only show from frame k+1 on (the sidecar's convention). A game over resets
    the game."""
    minimal = ale.getMinimalActionSet()
    for _, action in zip(range(num_frames), actions):
        yield ale.getScreenRGB(), action
        ale.act(minimal[action])
        if ale.game_over():
            ale.reset_game()


def _fingerprint(cfg: AtariConfig, game: str, k: int) -> dict:
    import ale_py

    d = dataclasses.asdict(cfg)
    for key in ("games", "videos_per_game"):
        d.pop(key)
    return {
        **d,
        "game": game,
        "index": k,
        "video_seed": video_seed(cfg, game, k),
        "ale_py": ale_py.__version__,
        "version": RECORDER_VERSION,
    }


def _game_and_index(mp4_path: Path) -> tuple[str, int]:
    game, _, index = Path(mp4_path).stem.rpartition("_")
    if not (game and index.isdigit()):
        raise ValueError(f"{mp4_path} is not an Atari video path (<game>_<index>.mp4)")
    return game, int(index)


def _sidecar(mp4_path: Path) -> Path:
    return mp4_path.with_name(mp4_path.stem + ".actions.json")


def write_atari_video(mp4_path: Path, cfg: AtariConfig) -> Path:
    """Record one video and its sidecar, both written atomically: the sidecar first, the mp4 last, so an existing
    mp4 means the pair is complete."""
    import av

    mp4_path = Path(mp4_path)
    game, k = _game_and_index(mp4_path)
    seed = video_seed(cfg, game, k)
    ale = emulator(game, seed)
    names = [a.name for a in ale.getMinimalActionSet()]
    if cfg.num_frames < 1:
        raise ValueError(f"Atari video {mp4_path}: duration_s={cfg.duration_s} gives no frames")
    records = []
    with atomic_path(mp4_path) as tmp_mp4:
        with av.open(str(tmp_mp4), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=FPS)
            stream.height, stream.width = 210, 160  # the ALE screen; both even, as yuv420p needs
            stream.pix_fmt = "yuv420p"
            stream.options = {"preset": cfg.preset, "crf": str(cfg.crf)}
            actions = sticky_random_actions(seed, len(names), cfg.sticky_prob)
            for i, (screen, action) in enumerate(play(ale, actions, cfg.num_frames)):
                frame = av.VideoFrame.from_ndarray(screen, format="rgb24")
                frame.pts = i
                container.mux(stream.encode(frame))
                records.append({"t": i / FPS, "action": action})
            container.mux(stream.encode(None))
        write_json(
            _sidecar(mp4_path),
            {
                "fps": FPS,
                "components": ["action"],
                "num_classes": [len(names)],
                "action_names": names,
                "frames": records,
                "atari": _fingerprint(cfg, game, k),
            },
            indent=None,
        )
    return mp4_path


def atari_video_paths(out_dir: Path, cfg: AtariConfig) -> list[Path]:
    """out_dir/<game>_000.mp4 ... for each game, each with its `<stem>.actions.json`."""
    return [Path(out_dir) / f"{game}_{k:03d}.mp4" for game in cfg.games for k in range(cfg.videos_per_game)]


def _is_current(mp4_path: Path, cfg: AtariConfig) -> bool:
    try:
        recorded = json.loads(_sidecar(mp4_path).read_text()).get("atari")
    except (OSError, ValueError):
        return False
    return recorded == _fingerprint(cfg, *_game_and_index(mp4_path))


def discard_stale_atari_videos(out_dir: Path, cfg: AtariConfig, log=print) -> None:
    """Delete the listed videos recorded with other settings (a look at each sidecar), so that
    `ensure_atari_video` records them again."""
    for path in atari_video_paths(out_dir, cfg):
        if path.exists() and not _is_current(path, cfg):
            _sidecar(path).unlink(missing_ok=True)
            path.unlink(missing_ok=True)
            log(f"Atari video {path} was recorded with other settings: removed, recorded again when fetched")


def ensure_atari_video(mp4_path: Path, cfg: AtariConfig, log=print) -> Path:
    """Record one video (and its sidecar) unless it is there."""
    mp4_path = Path(mp4_path)
    if mp4_path.exists() and _sidecar(mp4_path).exists():
        return mp4_path
    write_atari_video(mp4_path, cfg)
    log(f"Atari video {mp4_path} recorded ({cfg.num_frames} frames)")
    return mp4_path
