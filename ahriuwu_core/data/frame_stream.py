"""The streaming side of writing a frames store: whole time chunks written with a running hash, and the time-step
jitter of the shown source frames. Both keep O(1) memory for any video length."""

from __future__ import annotations

import hashlib
import math
from fractions import Fraction

import numpy as np


class StepJitter:
    """How unevenly the shown source frames are spaced in time: an output step is 1/fps, but it shows source
    frames whose times differ by whole source intervals (30 fps -> 20 fps alternates 33 and 67 ms steps, so motion
    per output frame alternates too). Streams the statistics."""

    def __init__(self, fps: int):
        self.fps, self.prev, self.n, self.sum, self.sq = fps, None, 0, 0.0, 0.0
        self.lo, self.hi = math.inf, -math.inf

    def add(self, shown_t: Fraction, copies: int) -> None:
        steps = ([float(shown_t - self.prev)] if self.prev is not None else []) + [0.0] * (copies - 1)
        for s in steps:  # repeated copies of one source frame are steps of 0 s
            self.n, self.sum, self.sq = self.n + 1, self.sum + s, self.sq + s * s
            self.lo, self.hi = min(self.lo, s), max(self.hi, s)
        self.prev = shown_t

    def stats(self) -> dict:
        if self.n == 0:
            return {"time_step_jitter_ms": 0.0, "time_step_range_ms": [1000.0 / self.fps] * 2}
        mean = self.sum / self.n
        std = math.sqrt(max(self.sq / self.n - mean * mean, 0.0))
        return {
            "time_step_jitter_ms": round(1000 * std, 3),
            "time_step_range_ms": [round(1000 * self.lo, 3), round(1000 * self.hi, 3)],
        }


class ChunkWriter:
    """Buffers output frames and writes whole time chunks, hashing the bytes as they go (bounded memory).

    It keeps one frame back after each full chunk, so the caller can still drop the final frame (`drop_last`):
    the exact count is only known at the end of the stream."""

    def __init__(self, array, chunk: int, height: int, width: int):
        self.array, self.chunk = array, chunk
        self.buf = np.empty((chunk + 1, height, width, 3), np.uint8)
        self.n_buf = self.n_written = 0
        self.sha = hashlib.sha256()
        self.sum = 0.0
        self.frozen_pairs = 0
        self.prev = None

    def add(self, img: np.ndarray, copies: int) -> None:
        for _ in range(copies):
            if self.n_buf == self.chunk + 1:
                self._write(self.chunk)
            self.buf[self.n_buf] = img
            self.n_buf += 1

    @property
    def total(self) -> int:
        return self.n_written + self.n_buf

    def drop_last(self, n: int) -> None:
        if n > self.n_buf:
            raise AssertionError("cannot drop frames already written")
        self.n_buf -= n

    def _write(self, n: int) -> None:
        data = self.buf[:n]
        end = self.n_written + n
        self.array.resize((end,) + self.array.shape[1:])
        self.array[self.n_written : end] = data
        self.sha.update(data.tobytes())
        self.sum += float(data.mean(dtype=np.float64)) * n
        seq = data.astype(np.int16)
        if self.prev is not None:
            seq = np.concatenate([self.prev[None], seq])
        self.frozen_pairs += int((np.abs(np.diff(seq, axis=0)).mean(axis=(1, 2, 3)) < 1.0).sum())
        self.prev = seq[-1]
        self.buf[: self.n_buf - n] = self.buf[n : self.n_buf]
        self.n_written, self.n_buf = end, self.n_buf - n

    def flush(self) -> None:
        if self.n_buf:
            self._write(self.n_buf)
