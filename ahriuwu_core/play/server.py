"""The play server: a Starlette app on 127.0.0.1 that streams a dream to the browser over a WebSocket.

    python -m ahriuwu_core.play --data-root assets           # after `make demo` (what `make play` runs)
    python -m ahriuwu_core.play --tokenizer T.pt --dynamics D.pt --frames a.zarr b.zarr

Protocol (`/ws`). The server sends a `hello` (JSON text: the session id and `PlayWorld.describe()`), then one
binary message per frame: a 4-byte big-endian header length, the JSON header (index, latency_ms, fps, action,
mode, steps, cached_frames, width, height, truth), the dreamed frame's RGB bytes, and in replay mode the ground
truth's. The page sends JSON text messages, each with a `type`:
  {"type": "action", "action": [move, ability]}   the keys held now (dream mode)
  {"type": "reset", "clip": 0, "mode": "dream"}   start again from a held-out clip ("dream" or "replay")
  {"type": "steps", "value": 4}                   sampling steps per frame
  {"type": "run", "value": true}                  pause / resume
  {"type": "record", "value": true}               start / stop recording (`GET /recording/<session>.gif|.mp4`)
A bad message is answered with {"type": "error", "message": ...} and changes nothing; a flood beyond the rate
limit is dropped with one error per second.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import secrets
import struct
import time
from pathlib import Path

import numpy as np

from .session import PlayConfig, PlaySession, PlayWorld

PAGE = Path(__file__).with_name("page.html")
MESSAGE_TYPES = ("action", "reset", "steps", "run", "record")
DEFAULT_PORT = 8765


class RateLimit:
    """At most `per_second` messages in any one-second window."""

    def __init__(self, per_second: int):
        self.per_second, self.times = per_second, []

    def allow(self, now: float) -> bool:
        self.times = [t for t in self.times if now - t < 1.0]
        if len(self.times) >= self.per_second:
            return False
        self.times.append(now)
        return True


def frame_message(header: dict, frame: np.ndarray, truth: np.ndarray | None) -> bytes:
    h = json.dumps(header).encode()
    parts = [struct.pack(">I", len(h)), h, np.ascontiguousarray(frame).tobytes()]
    if truth is not None:
        parts.append(np.ascontiguousarray(truth).tobytes())
    return b"".join(parts)


def encode_recording(frames: list[np.ndarray], fmt: str, fps: float, scale: int = 4) -> bytes:
    """GIF or MP4 (H.264) bytes of a recording, each frame scaled up `scale` times without smoothing."""
    if not frames:
        raise ValueError("the recording is empty")
    big = [np.repeat(np.repeat(f, scale, 0), scale, 1) for f in frames]
    buf = io.BytesIO()
    if fmt == "gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in big]
        images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
        return buf.getvalue()
    if fmt == "mp4":
        from fractions import Fraction

        import av

        h, w = big[0].shape[:2]
        with av.open(buf, mode="w", format="mp4") as out:
            stream = out.add_stream("libx264", rate=Fraction(round(fps * 1000), 1000))
            stream.width, stream.height, stream.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
            for f in big:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[: h - h % 2, : w - w % 2]), format="rgb24")
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        return buf.getvalue()
    raise ValueError(f"unknown recording format {fmt!r} (gif or mp4)")


def create_app(world: PlayWorld):
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocketDisconnect

    cfg = world.cfg
    sessions: dict[str, PlaySession] = {}
    recordings: dict[str, list[np.ndarray]] = {}

    async def page(request):
        return HTMLResponse(PAGE.read_text())

    async def info(request):
        return JSONResponse({**world.describe(), "sessions": len(sessions), "max_sessions": cfg.max_sessions})

    async def recording(request):
        sid, fmt = request.path_params["session"], request.path_params["fmt"]
        session = sessions.get(sid)
        frames = (session.recording if session is not None and session.recording else None) or recordings.get(sid)
        if not frames:
            return PlainTextResponse(f"no recording for session {sid!r}", status_code=404)
        if fmt not in ("gif", "mp4"):
            return PlainTextResponse(f"unknown format {fmt!r} (gif or mp4)", status_code=404)
        data = await run_in_threadpool(encode_recording, list(frames), fmt, world.fps)
        return Response(
            data,
            media_type="image/gif" if fmt == "gif" else "video/mp4",
            headers={"Content-Disposition": f'attachment; filename="dream-{sid}.{fmt}"'},
        )

    async def play_socket(ws):
        await ws.accept()
        if len(sessions) >= cfg.max_sessions:
            await ws.send_json(
                {
                    "type": "error",
                    "message": f"the server is full ({cfg.max_sessions} sessions); close another tab and reload",
                }
            )
            await ws.close(code=1013)
            return
        sid = secrets.token_urlsafe(6)
        session = PlaySession(world, seed=cfg.seed + len(recordings) + len(sessions))
        sessions[sid] = session
        lock = asyncio.Lock()  # the frame loop and a reset never touch the session at the same time
        state = {"running": True}
        wake = asyncio.Event()
        limit = RateLimit(cfg.max_messages_per_second)
        last_flood_error = 0.0

        async def send_frame(result, fps):
            header = {
                "type": "frame",
                "index": result["index"],
                "latency_ms": round(result["latency_ms"], 2),
                "fps": round(fps, 2),
                "action": result["action"],
                "labelled": result["labelled"],
                "mode": session.mode,
                "steps": session.sampling_steps,
                "cached_frames": session.cached_frames(),
                "width": int(result["frame"].shape[1]),
                "height": int(result["frame"].shape[0]),
                "truth": result["truth"] is not None,
            }
            await ws.send_bytes(frame_message(header, result["frame"], result["truth"]))

        async def reset(clip, mode):
            async with lock:
                first = await run_in_threadpool(session.reset, clip, mode)
            await send_frame(
                {
                    "index": 0,
                    "latency_ms": 0.0,
                    "action": list(session.action),
                    "labelled": False,
                    "frame": first,
                    "truth": first if mode == "replay" else None,
                },
                0.0,
            )

        async def frame_loop():
            period = 1.0 / world.fps
            sent: list[float] = []
            next_tick = time.perf_counter()
            while True:
                if not state["running"] or session.ended:
                    await wake.wait()
                    wake.clear()
                    next_tick = time.perf_counter()
                    continue
                async with lock:
                    result = await run_in_threadpool(session.step)
                if result["ended"]:
                    await ws.send_json({"type": "ended", "index": result["index"]})
                    continue
                now = time.perf_counter()
                sent = [t for t in sent if now - t < 1.0] + [now]
                await send_frame(result, (len(sent) - 1) / (now - sent[0]) if len(sent) > 1 else 0.0)
                next_tick = max(next_tick + period, time.perf_counter() - period)  # never bank a backlog
                await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))

        async def handle(message: dict):
            kind = message.get("type")
            if kind == "action":
                session.set_action(message.get("action"))
            elif kind == "reset":
                await reset(message.get("clip", 0), message.get("mode", "dream"))
                wake.set()
            elif kind == "steps":
                session.set_steps(message.get("value"))
            elif kind == "run":
                state["running"] = bool(message.get("value"))
                wake.set()
            elif kind == "record":
                if message.get("value"):
                    session.start_recording()
                else:
                    recordings[sid] = session.stop_recording()
            else:
                raise ValueError(f"unknown message type {kind!r} (one of {', '.join(MESSAGE_TYPES)})")
            await ws.send_json({"type": "ok", "for": kind})

        loop_task = None
        try:
            await ws.send_json({"type": "hello", "session": sid, **world.describe()})
            await reset(0, "dream")
            loop_task = asyncio.create_task(frame_loop())
            while True:
                raw = await ws.receive()
                if raw["type"] == "websocket.disconnect":
                    break
                now = time.perf_counter()
                if not limit.allow(now):
                    if now - last_flood_error > 1.0:
                        last_flood_error = now
                        await ws.send_json(
                            {
                                "type": "error",
                                "message": f"too many messages: at most {cfg.max_messages_per_second} per second",
                            }
                        )
                    continue
                try:
                    if raw.get("text") is None:
                        raise ValueError("messages must be JSON text, not binary")
                    try:
                        message = json.loads(raw["text"])
                    except json.JSONDecodeError as e:
                        raise ValueError(f"a message must be JSON: {e}") from None
                    if not isinstance(message, dict):
                        raise ValueError("a message must be a JSON object with a 'type'")
                    await handle(message)
                except ValueError as e:  # ActionError included
                    await ws.send_json({"type": "error", "message": str(e)})
        except WebSocketDisconnect:
            pass
        finally:
            if loop_task is not None:
                loop_task.cancel()
                try:
                    await loop_task
                except (asyncio.CancelledError, Exception):
                    pass
            if session.recording:
                recordings[sid] = session.stop_recording()
            sessions.pop(sid, None)
            while len(recordings) > cfg.max_sessions:  # keep the latest few finished recordings
                recordings.pop(next(iter(recordings)))

    return Starlette(
        routes=[
            Route("/", page),
            Route("/info", info),
            Route("/recording/{session}.{fmt}", recording),
            WebSocketRoute("/ws", play_socket),
        ]
    )


def world_from_args(args) -> PlayWorld:
    import torch

    from .session import load_world

    cfg = PlayConfig(context=args.context, sampling_steps=args.steps, max_sessions=args.max_sessions)
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if args.data_root:
        tokenizer, dynamics, stores = data_root_inputs(Path(args.data_root), args.tokenizer or "", args.dynamics or "")
    else:
        if not (args.tokenizer and args.dynamics and args.frames):
            raise SystemExit("play: give --data-root, or --tokenizer, --dynamics and --frames")
        tokenizer, dynamics, stores = Path(args.tokenizer), Path(args.dynamics), [Path(f) for f in args.frames]
    return load_world(tokenizer, dynamics, stores, cfg, device=device)


def data_root_inputs(root: Path, tokenizer: str = "", dynamics: str = "") -> tuple[Path, Path, list[Path]]:
    """The current models, or the published ones `tokenizer` and `dynamics` name (a sha256 prefix or a path), and
    the frames stores of the videos no model trained on (test, then validation) under a data root (`make demo`'s)."""
    from ..data import models
    from ..data.layout import DataLayout

    layout = DataLayout(root)
    if not layout.manifest.exists():
        raise SystemExit(f"play: {layout.manifest} not found; run `make demo` (or materialize the pipeline) first")
    manifest = json.loads(layout.manifest.read_text())
    ids = manifest.get("test", []) + manifest.get("validation", []) or [
        v["video_id"] for v in manifest.get("videos", [])
    ]
    stores = [layout.frames_store(v) for v in ids if layout.frames_store(v).exists()]
    if not stores:
        raise SystemExit(
            f"play: no frames store of a test or validation video ({', '.join(ids) or 'none listed'}) under {root}"
        )
    try:
        return models.find(layout, "tokenizer", tokenizer)[0], models.find(layout, "dynamics", dynamics)[0], stores
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"play: {e}") from None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ahriuwu_core.play", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default="", help="take the checkpoints and held-out videos from this data root")
    p.add_argument("--tokenizer", help="a checkpoint; with --data-root, a published one by sha256 prefix or path")
    p.add_argument("--dynamics", help="a checkpoint; with --data-root, a published one by sha256 prefix or path")
    p.add_argument("--frames", nargs="*", default=[], help="frames stores (zarr) whose clips a dream starts from")
    p.add_argument("--host", default="127.0.0.1", help="listen address (loopback by default)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--steps", type=int, default=4, help="default sampling steps per frame")
    p.add_argument("--context", type=int, default=16)
    p.add_argument("--max-sessions", type=int, default=4)
    args = p.parse_args(argv)
    import torch
    import uvicorn

    if args.threads:
        torch.set_num_threads(args.threads)
    world = world_from_args(args)
    print(
        f"play: {len(world.clips)} clips, action space {list(world.num_classes)} ({', '.join(world.components)}), "
        f"{world.fps:g} fps, window {world.window} frames, context noise {world.context_noise:g}",
        flush=True,
    )
    print(f"play: open http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(create_app(world), host=args.host, port=args.port, log_level="warning", ws_max_size=1 << 16)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
