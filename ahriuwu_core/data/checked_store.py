"""Zarr stores that cannot be silently wrong: every chunk is written (even an all-zero one) and zstd-compressed with
a checksum, and reading checks for missing chunks and damaged ones, naming the store and the chunk.

Without this, zarr reads a deleted chunk as its fill value (32 black frames, or latents of zeros) and a chunk with
flipped bytes as different pixels; with it, both are errors. Content hashes (`content_hash` attributes) are
verified by the stages that read a whole store (`HashCheck`)."""

from __future__ import annotations

import hashlib
import itertools
import math
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

COMPRESSORS = (ZstdCodec(level=3, checksum=True),)


class StoreDamaged(ValueError):
    """A zarr store with a missing or damaged chunk, or content that does not match its recorded hash."""


def create_array(group: zarr.Group, name: str, **kwargs) -> zarr.Array:
    """`group.create_array` with checksummed compression and every chunk written."""
    return group.create_array(name, compressors=COMPRESSORS, config={"write_empty_chunks": True}, **kwargs)


def _chunk_grid(array: zarr.Array):
    return itertools.product(*(range(math.ceil(s / c)) for s, c in zip(array.shape, array.chunks)))


def missing_chunks(store: Path, name: str, array: zarr.Array) -> list[str]:
    """Chunk keys of a local store's array that are not on disk (default `c/` chunk key encoding)."""
    base = Path(store) / name / "c"
    return [
        f"{name}/c/{'/'.join(map(str, idx))}"
        for idx in _chunk_grid(array)
        if not base.joinpath(*map(str, idx)).is_file()
    ]


def open_checked(store: Path, arrays: tuple[str, ...] = ()) -> zarr.Group:
    """Open a store read-only and check that each named array has all its chunks."""
    store = Path(store)
    try:
        group = zarr.open_group(str(store), mode="r")
    except Exception as e:
        raise StoreDamaged(f"{store}: cannot open the zarr store ({type(e).__name__}: {e})") from e
    for name in arrays:
        if name not in group:
            continue
        lost = missing_chunks(store, name, group[name])
        if lost:
            raise StoreDamaged(
                f"{store}: {len(lost)} chunk(s) of '{name}' missing ({', '.join(lost[:4])}"
                f"{', ...' if len(lost) > 4 else ''}); the store is damaged: rematerialize it"
            )
    return group


def read(store: Path, array: zarr.Array, selection=slice(None)) -> np.ndarray:
    """array[selection], with a damaged chunk (truncated, or bytes that fail the checksum) named as such."""
    try:
        return np.asarray(array[selection])
    except Exception as e:
        where = _chunks_of(array, selection)
        raise StoreDamaged(
            f"{store}: reading '{array.basename}'{where} failed ({type(e).__name__}: {e}); the store "
            "is damaged: rematerialize it"
        ) from e


def _chunks_of(array: zarr.Array, selection) -> str:
    if isinstance(selection, slice) and array.ndim:
        start, stop, _ = selection.indices(array.shape[0])
        c = array.chunks[0]
        return f" chunks {start // c}..{max(start, stop - 1) // c} along the first axis"
    return ""


class HashCheck:
    """sha256 over the bytes of a store's main array read in order, compared with its `content_hash`."""

    def __init__(self, store: Path, expected: str | None):
        self.store, self.expected, self.sha = Path(store), expected, hashlib.sha256()

    def update(self, values: np.ndarray) -> None:
        self.sha.update(np.ascontiguousarray(values).tobytes())

    def verify(self) -> None:
        if self.expected and self.sha.hexdigest() != self.expected:
            raise StoreDamaged(
                f"{self.store}: content does not match its content_hash ({self.sha.hexdigest()[:12]} "
                f"!= {self.expected[:12]}); the store is damaged: rematerialize it"
            )
