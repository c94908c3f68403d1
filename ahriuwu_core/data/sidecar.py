"""Actions sidecars: read and validate one (JSON or JSON Lines, see the README), and align its records to the
output frames by the action convention (`conventions`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ahriuwu_core.data.conventions import DEFAULT_ACTION_COMPONENTS, actions_leading_into


class SidecarError(ValueError):
    """An actions sidecar that cannot be used; the message names the file and what is wrong."""


def _read_sidecar(path: Path) -> tuple[list, list, list, dict]:
    """(components, num_classes, records, header) from a JSON sidecar ({"components", "num_classes", "frames": [...]})
    or a JSON Lines one (a header line {"components", "num_classes"}, then one record per line)."""
    if path.suffix == ".jsonl":
        try:
            lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except (OSError, ValueError) as e:
            raise SidecarError(f"actions sidecar {path}: not readable JSON Lines ({e})") from e
        if not lines or not isinstance(lines[0], dict) or "components" not in lines[0]:
            raise SidecarError(
                f"actions sidecar {path}: the first line must be the header "
                '{"components": [...], "num_classes": [...]}'
            )
        doc = {**lines[0], "frames": lines[1:]}
    else:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise SidecarError(f"actions sidecar {path}: not readable JSON ({e})") from e
    try:
        return list(doc["components"]), [int(n) for n in doc["num_classes"]], doc["frames"], doc
    except (KeyError, TypeError, ValueError) as e:
        raise SidecarError(f"actions sidecar {path}: needs 'components', 'num_classes', 'frames' ({e!r})") from e


def load_actions(path) -> dict:
    """Read and validate an actions sidecar (JSON or JSON Lines, see the README); SidecarError naming the file
    otherwise."""
    path = Path(path)
    components, num_classes, records, header = _read_sidecar(path)
    if len(components) != len(num_classes) or not components or not all(isinstance(c, str) for c in components):
        raise SidecarError(f"actions sidecar {path}: components {components} vs num_classes {num_classes}")
    if any(n < 1 for n in num_classes):
        raise SidecarError(f"actions sidecar {path}: every component needs at least one class ({num_classes})")
    if not isinstance(records, list) or not records:
        raise SidecarError(f"actions sidecar {path}: no action records")
    times = np.empty(len(records), np.float64)
    values = np.empty((len(records), len(components)), np.int16)
    declared = {"t", *components}
    for i, rec in enumerate(records):
        # A key the header does not declare would be dropped silently, and the video would train with fewer
        # components than its log has: refuse it.
        undeclared = sorted(set(rec) - declared) if isinstance(rec, dict) else []
        if undeclared:
            raise SidecarError(
                f"actions sidecar {path}: frame record {i} has key {undeclared[0]!r} that the header does not "
                f"declare (components: {components}); add it to 'components' and 'num_classes', or remove it"
            )
        try:
            times[i] = float(rec["t"])
            for j, (name, n) in enumerate(zip(components, num_classes)):
                v = rec[name]
                if isinstance(v, bool) or int(v) != v or not 0 <= v < n:
                    raise ValueError(f"{name}={v!r} not in [0, {n})")
                values[i, j] = int(v)
        except (KeyError, TypeError, ValueError) as e:
            raise SidecarError(f"actions sidecar {path}: frame record {i} invalid ({e!r})") from e
    if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
        bad = int(np.argmax(np.diff(times) <= 0)) + 1 if len(times) > 1 else 0
        raise SidecarError(f"actions sidecar {path}: times must be finite and strictly increasing (record {bad})")
    # The last record is in force for one more typical record interval, not forever: a log that stops early must
    # not label the rest of the video with its last keys. "hold_last": true in the header says it does hold.
    hold_last = bool(header.get("hold_last", False))
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    until = math.inf if hold_last else times[-1] + step
    return {"components": components, "num_classes": num_classes, "times": times, "values": values, "until": until}


def align_actions(actions: dict | None, num_frames: int, fps: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output frame k: the action that led into it (see `conventions`), and whether there is one."""
    if actions is None:
        return np.zeros((num_frames, len(DEFAULT_ACTION_COMPONENTS)), np.int16), np.zeros(num_frames, bool)
    return actions_leading_into(actions["times"], actions["values"], num_frames, fps, actions.get("until", math.inf))
