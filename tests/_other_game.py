"""A small game that is not the demo, for the bring-your-own-game tests: a striped, checkered world seen through a
96x72 window at 40 fps, scrolled by a keyboard-style action with 17 classes (0 = still, 1..16 = 16 compass
directions), logged as a JSON Lines sidecar. Optional extra components (e.g. ability, item) ride along."""

from __future__ import annotations

import json
import math
from pathlib import Path

import av
import numpy as np

WIDTH, HEIGHT, FPS, SPEED = 96, 72, 40, 60.0  # window, source rate, world px per second


def _world(seed: int) -> np.ndarray:
    rng = np.random.default_rng(1000 + seed)
    yy, xx = np.mgrid[0:512, 0:512]
    base = np.stack(
        [(xx // 16 + yy // 16) % 2 * 120 + 60, (np.sin(xx / 9.0) * 80 + 120), (yy * 255 // 511)], -1
    ).astype(np.float32)
    spots = rng.integers(0, 512, (60, 2))
    for x, y in spots:
        base[max(0, y - 4) : y + 4, max(0, x - 4) : x + 4] = rng.integers(0, 256, 3)
    return np.clip(base, 0, 255).astype(np.uint8)


def write_other_game(
    path: Path, seed: int, seconds: float = 3.0, extra_classes: tuple[int, ...] = (), sidecar: bool = True
) -> Path:
    """Write `path` (.mp4) and, with `sidecar`, `<stem>.actions.jsonl` beside it. Components: "key" (17 classes)
    plus one per entry of `extra_classes` ("extra0", ...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    world = _world(seed)
    n = int(round(seconds * FPS))
    x, y = 200.0, 200.0
    key, records = 0, []
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "crf": "18"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(n):
            if i % 10 == 0:
                key = int(rng.integers(0, 17))
            extras = [int(rng.integers(0, c)) for c in extra_classes]
            records.append({"t": round(i / FPS, 6), "key": key, **{f"extra{j}": v for j, v in enumerate(extras)}})
            ix, iy = int(round(x)) % (512 - WIDTH), int(round(y)) % (512 - HEIGHT)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(world[iy : iy + HEIGHT, ix : ix + WIDTH]), "rgb24")
            out.mux(stream.encode(frame))
            if key:  # the key in force from this frame on moves the view before the next one
                angle = (key - 1) * 2 * math.pi / 16
                x, y = x + SPEED / FPS * math.cos(angle), y - SPEED / FPS * math.sin(angle)
        out.mux(stream.encode())
    if sidecar:
        header = {
            "components": ["key"] + [f"extra{j}" for j in range(len(extra_classes))],
            "num_classes": [17, *extra_classes],
            "fps": FPS,
        }
        lines = [json.dumps(header)] + [json.dumps(r) for r in records]
        path.with_name(path.stem + ".actions.jsonl").write_text("\n".join(lines) + "\n")
    return path
