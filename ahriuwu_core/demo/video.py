"""Writing demo videos: an mp4 per seed plus its actions sidecar (contract format), atomically and idempotently.

The sidecar (`<stem>.actions.json`) also carries `player_world_xy` (the player's world position per frame) and
`demo` (the settings + DEMO_GAME_VERSION, used to skip complete videos).
"""

from __future__ import annotations

import dataclasses
import json
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ahriuwu_core.data.files import atomic_path, write_json
from ahriuwu_core.demo.game import ACTION_COMPONENTS, ACTION_NUM_CLASSES, DEMO_GAME_VERSION
from ahriuwu_core.demo.policy import play_demo


@dataclass
class DemoConfig:
    num_videos: int = 12  # a hash split of 12 videos or more holds out 2 validation and 4 test videos
    duration_s: float = 30.0
    fps: float = 40.0
    width: int = 640
    height: int = 360
    seed: int = 0  # video k plays with seed `seed * 1000 + k`
    player_speed: float = 200.0  # world (= source) px per second
    crf: int = 20
    preset: str = "veryfast"

    @property
    def num_frames(self) -> int:
        return int(round(self.duration_s * self.fps))


def _fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def _config_fingerprint(cfg: DemoConfig, seed: int) -> dict:
    d = dataclasses.asdict(cfg)
    d.pop("num_videos")
    d["video_seed"] = seed
    d["version"] = DEMO_GAME_VERSION
    return d


def write_demo_video(mp4_path: Path, cfg: DemoConfig, seed: int) -> Path:
    """Render one demo video + its actions sidecar (`<stem>.actions.json`), both written atomically: the sidecar
    first, the mp4 last, so an existing mp4 means the pair is complete."""
    import av

    mp4_path = Path(mp4_path)
    sidecar = mp4_path.with_name(mp4_path.stem + ".actions.json")
    n = cfg.num_frames
    if n < 1:
        raise ValueError(f"demo video {mp4_path}: duration_s={cfg.duration_s} at fps={cfg.fps} gives no frames")
    records, positions = [], []
    with atomic_path(mp4_path) as tmp_mp4:  # renamed last: an existing mp4 means the pair is complete
        with av.open(str(tmp_mp4), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=_fps_fraction(cfg.fps))
            stream.width, stream.height, stream.pix_fmt = cfg.width, cfg.height, "yuv420p"
            stream.options = {"preset": cfg.preset, "crf": str(cfg.crf)}
            # Encode on a worker thread (PyAV releases the GIL in libav calls) while the next frame renders.
            pending: queue.Queue = queue.Queue(maxsize=8)
            errors: list[BaseException] = []

            def encode_worker():
                got_end = False
                try:
                    while (item := pending.get()) is not None:
                        vf = av.VideoFrame.from_ndarray(item[1], format="rgb24")
                        vf.pts = item[0]
                        container.mux(stream.encode(vf))
                    got_end = True
                    container.mux(stream.encode(None))
                except BaseException as e:  # surfaced in the main thread below
                    errors.append(e)
                    while not got_end and pending.get() is not None:  # drain so the producer never blocks
                        pass

            worker = threading.Thread(target=encode_worker, name=f"encode-{mp4_path.stem}", daemon=True)
            worker.start()
            try:
                for i, (frame, move, ability, pos) in enumerate(
                    play_demo(seed, n, cfg.width, cfg.height, cfg.fps, cfg.player_speed)
                ):
                    records.append({"t": i / cfg.fps, "move": move, "ability": ability})
                    positions.append([round(pos[0], 3), round(pos[1], 3)])
                    if errors:
                        break
                    pending.put((i, frame))
            finally:
                pending.put(None)
                worker.join()
            if errors:
                raise RuntimeError(f"encoding demo video {mp4_path} failed: {errors[0]}") from errors[0]
        payload = {
            "fps": cfg.fps,
            "components": ACTION_COMPONENTS,
            "num_classes": ACTION_NUM_CLASSES,
            "frames": records,
            "player_world_xy": positions,
            "demo": _config_fingerprint(cfg, seed),
        }
        write_json(sidecar, payload, indent=None)
    return mp4_path


def _is_complete(mp4_path: Path, cfg: DemoConfig, seed: int) -> bool:
    sidecar = mp4_path.with_name(mp4_path.stem + ".actions.json")
    if not (mp4_path.exists() and sidecar.exists()):
        return False
    try:
        return json.loads(sidecar.read_text()).get("demo") == _config_fingerprint(cfg, seed)
    except (OSError, ValueError):
        return False


def demo_video_paths(out_dir: Path, cfg: DemoConfig | None = None) -> list[Path]:
    """Where the demo's videos live: out_dir/demo_000.mp4 ... demo_{n-1}.mp4 (each with `<stem>.actions.json`)."""
    cfg = cfg or DemoConfig()
    return [Path(out_dir) / f"demo_{k:03d}.mp4" for k in range(cfg.num_videos)]


def _demo_seed(mp4_path: Path, cfg: DemoConfig) -> int:
    """Video k (demo_<k>.mp4) uses seed cfg.seed*1000+k."""
    stem = Path(mp4_path).stem
    index = stem.removeprefix("demo_")
    if not (stem.startswith("demo_") and index.isdigit()):
        raise ValueError(f"{mp4_path} is not a demo video path (demo_<index>.mp4)")
    return cfg.seed * 1000 + int(index)


def discard_stale_demo_videos(out_dir: Path, cfg: DemoConfig | None = None, log=print) -> None:
    """Delete the demo videos rendered with other settings (a cheap look at each sidecar), so that
    `ensure_demo_video` renders them again; complete, current ones stay."""
    cfg = cfg or DemoConfig()
    for path in demo_video_paths(out_dir, cfg):
        if path.exists() and not _is_complete(path, cfg, _demo_seed(path, cfg)):
            path.with_name(path.stem + ".actions.json").unlink(missing_ok=True)
            path.unlink(missing_ok=True)
            log(f"demo video {path} was rendered with other settings: removed, rendered again when fetched")


def ensure_demo_video(mp4_path: Path, cfg: DemoConfig | None = None, log=print) -> Path:
    """Render one demo video (and its sidecar) unless it is there; the mp4 is renamed into place last, so one that
    exists is complete."""
    cfg = cfg or DemoConfig()
    mp4_path = Path(mp4_path)
    seed = _demo_seed(mp4_path, cfg)
    if mp4_path.exists() and mp4_path.with_name(mp4_path.stem + ".actions.json").exists():
        return mp4_path
    mp4_path.parent.mkdir(parents=True, exist_ok=True)
    write_demo_video(mp4_path, cfg, seed)
    log(f"demo video {mp4_path} written ({cfg.num_frames} frames, seed {seed})")
    return mp4_path


def write_demo_videos(out_dir: Path, cfg: DemoConfig | None = None, log=print) -> list[Path]:
    """Write out_dir/demo_000.mp4 (+ demo_000.actions.json) ... demo_{n-1}; video k uses seed cfg.seed*1000+k.
    Idempotent: a video whose mp4 and sidecar exist and were made with the same settings is skipped."""
    cfg = cfg or DemoConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for path in demo_video_paths(out_dir, cfg):
        seed = _demo_seed(path, cfg)
        if _is_complete(path, cfg, seed):
            log(f"demo video {path} exists, skipped")
        else:
            write_demo_video(path, cfg, seed)
            log(f"demo video {path} written ({cfg.num_frames} frames, seed {seed})")
        paths.append(path)
    return paths
