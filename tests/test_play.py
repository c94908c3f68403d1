"""Play: the real server (`make play`) on 127.0.0.1 with a demo world model trained here, driven over its
WebSocket protocol and in a real browser (Playwright with Debian's chromium)."""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests._servers import free_port, stop_group

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
MAX_SESSIONS = 2
pytestmark = pytest.mark.timeout(1800)  # the first test waits for the model to train


@pytest.fixture(scope="module")
def data_root(demo_model_root):
    return demo_model_root


@pytest.fixture(scope="module")
def server(data_root):
    """`make play` on a free port, as a user starts it; stopped with SIGTERM to its process group."""
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "play-server.log", "w")
    proc = subprocess.Popen(
        [
            "make",
            "-s",
            "play",
            f"DATA_ROOT={data_root}",
            f"PLAY_PORT={port}",
            f"PLAY_ARGS=--max-sessions {MAX_SESSIONS} --threads 1",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                info = json.loads(urllib.request.urlopen(f"{url}/info", timeout=2).read())
                break
            except OSError:
                assert proc.poll() is None, "make play exited; see test-artifacts/play-server.log"
                assert time.time() < deadline, "make play did not come up in 120 s"
                time.sleep(0.5)
        yield {"url": url, "ws": f"ws://127.0.0.1:{port}/ws", "info": info, "root": data_root}
    finally:
        stop_group(proc)
        log.close()
    assert "play: open http://127.0.0.1:" in (ARTIFACTS / "play-server.log").read_text()


class Client:
    """A protocol client: JSON text messages and binary frames, kept apart."""

    def __init__(self, url):
        from contextlib import ExitStack

        from websockets.sync.client import connect

        self.stack = ExitStack()
        self.ws = self.stack.enter_context(connect(url, open_timeout=30, max_size=1 << 22))
        self.texts: list[dict] = []
        self.frames: list[tuple[dict, np.ndarray, np.ndarray | None]] = []

    def recv(self, timeout=30):
        m = self.ws.recv(timeout=timeout)
        if isinstance(m, bytes):
            n = struct.unpack(">I", m[:4])[0]
            header = json.loads(m[4 : 4 + n])
            h, w = header["height"], header["width"]
            pixels = np.frombuffer(m[4 + n :], np.uint8)
            dream = pixels[: h * w * 3].reshape(h, w, 3)
            truth = pixels[h * w * 3 :].reshape(h, w, 3) if header["truth"] else None
            self.frames.append((header, dream, truth))
            return header
        msg = json.loads(m)
        self.texts.append(msg)
        return msg

    def wait_text(self, kind, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            msg = self.recv(timeout)
            if msg.get("type") == kind:
                return msg
        raise AssertionError(f"no {kind!r} message in {timeout} s")

    def wait_frames(self, n, timeout=60):
        """The next n frames."""
        start = len(self.frames)
        deadline = time.time() + timeout
        while len(self.frames) < start + n:
            assert time.time() < deadline, f"only {len(self.frames) - start} of {n} frames in {timeout} s"
            self.recv(timeout)
        return self.frames[start : start + n]

    def send(self, obj):
        self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    def close(self):
        self.stack.close()


def test_bad_messages_get_an_error_and_the_dream_goes_on(server):
    c = Client(server["ws"])
    hello = c.wait_text("hello")
    assert hello["num_classes"] == [9, 5] and hello["components"] == ["move", "ability"] and hello["move_keys"]
    cases = [
        ("not json", "must be JSON"),
        (b"\x00\x01", "not binary"),
        (json.dumps([1, 2]), "JSON object"),
        ({"type": "jump"}, "unknown message type 'jump'"),
        ({"type": "action", "action": [1]}, "list of 2 integers"),
        ({"type": "action", "action": ["1", 0]}, "'move' must be an integer"),
        ({"type": "action", "action": [True, 0]}, "'move' must be an integer"),
        ({"type": "action", "action": [9, 0]}, "'move' = 9 is outside its 9 classes"),
        ({"type": "action", "action": [0, -1]}, "'ability' = -1 is outside its 5 classes"),
        ({"type": "steps", "value": 3}, "power of two"),
        ({"type": "reset", "clip": 99}, "clip must be an integer"),
        ({"type": "reset", "mode": "fly"}, "mode must be 'dream' or 'replay'"),
    ]
    for bad, expected in cases:
        c.send(bad)
        msg = c.wait_text("error")
        assert expected in msg["message"], (bad, msg)
    frames = c.wait_frames(3)
    assert all(h["action"] == [0, 0] and h["steps"] == 4 for h, _, _ in frames)  # nothing bad took effect
    # a flood: dropped with an error, and the connection and the dream survive it
    for _ in range(400):
        c.send({"type": "action", "action": [1, 0]})
    assert "too many messages" in c.wait_text("error")["message"]
    time.sleep(1.2)
    c.send({"type": "action", "action": [5, 0]})
    c.wait_text("ok")
    assert c.wait_frames(3)[-1][0]["action"] == [5, 0]
    c.close()


def test_two_sessions_are_independent_and_the_limit_holds(server):
    a, b = Client(server["ws"]), Client(server["ws"])
    ha, hb = a.wait_text("hello"), b.wait_text("hello")
    assert ha["session"] != hb["session"]
    a.send({"type": "action", "action": [1, 0]})
    b.send({"type": "action", "action": [5, 2]})
    a.wait_text("ok"), b.wait_text("ok")
    assert a.wait_frames(3)[-1][0]["action"] == [1, 0]
    assert b.wait_frames(3)[-1][0]["action"] == [5, 2]
    third = Client(server["ws"])
    assert "server is full" in third.wait_text("error")["message"]
    from websockets.exceptions import ConnectionClosed

    with pytest.raises(ConnectionClosed):  # closed by the server (1013)
        third.recv(timeout=10)
    assert third.ws.close_code == 1013
    a.close()
    time.sleep(0.5)
    again = Client(server["ws"])  # a closed tab frees its place
    again.wait_text("hello")
    again.close(), b.close()


def test_replay_reset_and_a_bounded_context(server):
    import zarr

    c = Client(server["ws"])
    hello = c.wait_text("hello")
    window, context = hello["window"], hello["context"]
    assert window == 31  # the demo preset's longest training sequence is 32 frames
    frames = c.wait_frames(window + 20)  # past the point where the window fills
    cached = [h["cached_frames"] for h, _, _ in frames]
    assert max(cached) == window and cached[-10:] == [window] * 10  # fills up, then never grows
    assert frames[-1][0]["index"] > window

    clip = 1
    c.send({"type": "reset", "clip": clip, "mode": "replay"})
    for _ in range(5):  # frames already on their way, then the reset's first: the dream restarts on that clip
        first = c.wait_frames(1)[0]
        if first[0]["index"] == 0:
            break
    assert first[0]["index"] == 0 and first[0]["truth"] and first[0]["mode"] == "replay"
    replay = c.wait_frames(5)
    assert [h["index"] for h, _, _ in replay] == [1, 2, 3, 4, 5]
    video_id, start = hello["clips"][clip].split(" @ frame ")
    store = zarr.open_group(str(server["root"] / "frames" / f"{video_id}.zarr"), mode="r")
    t0 = int(start) + context
    np.testing.assert_array_equal(first[2], store["frames"][t0 - 1])  # the last context frame, both panes
    for i, (h, _dream, truth) in enumerate(replay):
        np.testing.assert_array_equal(truth, store["frames"][t0 + i])  # the ground truth of that frame
        assert h["action"] == store["actions"][t0 + i].tolist()  # driven by the recorded action
        assert h["mode"] == "replay"
    c.close()


def test_recording_downloads_as_gif_and_mp4(server):
    import av
    from PIL import Image

    c = Client(server["ws"])
    sid = c.wait_text("hello")["session"]
    c.send({"type": "record", "value": True})
    c.wait_text("ok")
    c.wait_frames(12)
    c.send({"type": "record", "value": False})
    c.wait_text("ok")
    gif = urllib.request.urlopen(f"{server['url']}/recording/{sid}.gif", timeout=60).read()
    img = Image.open(io.BytesIO(gif))
    assert img.format == "GIF" and img.n_frames >= 12 and img.size == (64 * 4, 64 * 4)
    mp4 = urllib.request.urlopen(f"{server['url']}/recording/{sid}.mp4", timeout=60).read()
    with av.open(io.BytesIO(mp4)) as f:
        decoded = list(f.decode(video=0))
    assert len(decoded) >= 12 and (decoded[0].width, decoded[0].height) == (256, 256)
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"{server['url']}/recording/nobody.gif", timeout=10)
    c.close()


def _scroll_agreement(log, move):
    """Fraction of received frames generated with `move` whose view scrolled against it (the camera follows the
    champion), by the demo's motion estimate; and the mean scroll (dx, dy)."""
    import base64

    from ahriuwu_core.data.conventions import MOVE_UNIT
    from ahriuwu_core.demo.motion import estimate_scroll

    def pixels(entry):
        return np.frombuffer(base64.b64decode(entry["dream"]), np.uint8).reshape(entry["height"], entry["width"], 3)

    agree, shifts = [], []
    for prev, cur in zip(log, log[1:]):
        if cur["action"][0] != move or cur["index"] != prev["index"] + 1:
            continue
        dx, dy = estimate_scroll(pixels(prev), pixels(cur))
        ux, uy = MOVE_UNIT[move]
        norm = float(np.hypot(dx, dy))
        agree.append(norm > 1e-6 and (-ux * dx - uy * dy) / norm >= np.cos(np.pi / 4))
        shifts.append((dx, dy))
    return float(np.mean(agree)), np.mean(shifts, 0), len(agree)


def test_keys_steer_the_dream_in_a_real_browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(server["url"] + "/")
        page.wait_for_function("window.ahriuwuPlay && window.ahriuwuPlay.frames > 5", timeout=60_000)
        assert page.locator("canvas#dream").evaluate("c => c.width") == 64 * 6  # scaled up, not smoothed
        assert page.locator("canvas#dream").evaluate("c => getComputedStyle(c).imageRendering") == "pixelated"

        results = {}
        for key, move in (("ArrowRight", 1), ("ArrowLeft", 5)):
            page.evaluate("window.ahriuwuPlay.log.length = 0")
            page.keyboard.down(key)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ARTIFACTS / f"play-dream-{key}.png"))
            page.keyboard.up(key)
            page.wait_for_timeout(200)
            log = page.evaluate("window.ahriuwuPlay.log")
            results[move] = _scroll_agreement(log, move)
        (ARTIFACTS / "play-agreement.json").write_text(
            json.dumps(  # mean_shift: pixels per frame (dx, dy)
                {
                    str(k): {"agreement": v[0], "mean_shift": list(map(float, v[1])), "frames": v[2]}
                    for k, v in results.items()
                },
                indent=1,
            )
        )
        east, west = results[1], results[5]
        assert east[2] >= 10 and west[2] >= 10, results  # up to 20 frames in a second of key press
        assert east[0] >= 0.7, results  # holding "east" scrolls the map west in >= 70% of the frames
        assert east[1][0] < 0 < west[1][0], results  # and "west" scrolls it the other way

        page.select_option("#mode", "replay")
        page.wait_for_function(
            "(l => l.length && l.at(-1).truth && l.at(-1).index >= 10)(window.ahriuwuPlay.log)", timeout=30_000
        )
        assert page.locator("#truthPane").is_visible() and page.locator("canvas#truth").evaluate("c => c.width") > 0
        page.screenshot(path=str(ARTIFACTS / "play-replay.png"))
        assert page.evaluate("window.ahriuwuPlay.errors") == []
        browser.close()
