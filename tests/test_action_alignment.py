"""The action each output frame carries (`conventions.actions_leading_into`): per component, the non-zero class
in force longest during the frame's interval [(k-1)/fps, k/fps) (ties: the later), 0 only if nothing was pressed
during all of it."""

import numpy as np
import pytest

from ahriuwu_core.data.conventions import actions_leading_into


def labels(records, num_frames, fps=20, until=float("inf")):
    """records: [(t, class), ...] of one component -> (per-frame class list, has list)."""
    times = np.array([t for t, _ in records], np.float64)
    values = np.array([[v] for _, v in records], np.int16)
    acts, has = actions_leading_into(times, values, num_frames, fps, until)
    assert acts.dtype == np.int16 and acts.shape == (num_frames, 1)
    return acts[:, 0].tolist(), has.tolist()


def brute_force(records, num_frames, fps, until):
    """The rule, spelled out interval by interval (slow)."""
    out, has = [0] * num_frames, [False] * num_frames
    for k in range(1, num_frames):
        start, end = (k - 1) / fps, min(k / fps, until)
        if records[0][0] > start + 1e-9 or start >= until:
            continue
        has[k] = True
        held, latest = {}, {}
        for j, (t, v) in enumerate(records):
            t_next = records[j + 1][0] if j + 1 < len(records) else until
            a, b = max(t, start), min(t_next, end)
            if b - a > 1e-9 and v:  # not float noise where a record sits on a frame's time
                held[v] = held.get(v, 0.0) + (b - a)
                latest[v] = a
        if held:
            out[k] = max(held, key=lambda v: (round(held[v], 9), latest[v]))
    return out, has


def test_an_impulse_on_either_source_frame_of_an_interval_lands_on_that_interval():
    # 40 fps log: a cast (class 3) for one source frame. Output frame k's interval holds source frames 2k-2, 2k-1.
    for source_frame in range(2, 12):
        records = [(i / 40, 3 if i == source_frame else 0) for i in range(16)]
        acts, has = labels(records, 8)
        k = source_frame // 2 + 1
        assert acts == [3 if j == k else 0 for j in range(8)], (source_frame, acts)
        assert has == [False] + [True] * 7


def test_a_held_key_keeps_its_class_and_still_is_zero_only_when_still_all_interval():
    # Key 5 from 0.05 s to 0.20 s, logged every 25 ms: frames 2..4 are entirely 5, the rest entirely still.
    records = [(i / 40, 5 if 2 <= i < 8 else 0) for i in range(16)]
    assert labels(records, 8)[0] == [0, 0, 5, 5, 5, 0, 0, 0]
    # Held from 0.0625 s (mid-interval) to 0.2125 s: frame 2 has it for 37.5 ms of 50, frame 5 for 12.5 ms of 50.
    records = [(0.0, 0), (0.0625, 5), (0.2125, 0)]
    assert labels(records, 8)[0] == [0, 0, 5, 5, 5, 5, 0, 0]


def test_a_tap_shorter_than_a_frame_in_an_irregular_input_log():
    # A real-looking key log: events at irregular times (ms resolution). Key 7 is tapped for 12 ms inside frame 3's
    # interval [0.10, 0.15); key 2 is held from 0.161 s to 0.251 s, with a 9 ms tap of key 4 at 0.203 s.
    records = [(0.0, 0), (0.117, 7), (0.129, 0), (0.161, 2), (0.203, 4), (0.212, 2), (0.251, 0), (0.4, 0)]
    acts, has = labels(records, 9)
    # frame 4 [0.15, 0.20): 2 for 39 ms; frame 5 [0.20, 0.25): 2 for 41 ms beats 4 for 9 ms; frame 6: 2 for 1 ms.
    assert acts == [0, 0, 0, 7, 2, 2, 2, 0, 0]
    assert has == [False] + [True] * 8


def test_ties_go_to_the_later_class():
    # Two impulses of 25 ms each inside one interval, and two held keys splitting an interval evenly.
    records = [(i / 40, c) for i, c in enumerate([0, 0, 1, 2, 0, 0, 6, 3, 3, 0])]
    assert labels(records, 5)[0] == [0, 0, 2, 0, 3]
    # A 30 fps log written in microseconds: frame 2 [0.05, 0.10) has 1 for 33.333 ms, 4 for 16.667 ms.
    records = [(0.0, 0), (0.05, 1), (0.083333, 4), (0.116667, 0)]
    assert labels(records, 4)[0] == [0, 0, 1, 4]
    # A 60 fps log written in microseconds: 16.667 ms of 1 and 16.666 ms of 4 are a tie, the later wins.
    records = [(0.0, 0), (0.05, 1), (0.066667, 4), (0.083333, 0)]
    assert labels(records, 3)[0] == [0, 0, 4]


def test_until_and_frame_0_and_a_log_that_starts_late():
    records = [(0.0, 1), (0.025, 1), (0.05, 2), (0.075, 2)]
    # In force until 0.1 s: frame 2's interval [0.05, 0.10) is the last one that starts before it.
    assert labels(records, 6, until=0.1) == ([0, 1, 2, 0, 0, 0], [False, True, True, False, False, False])
    # Until inside an interval: the interval is labelled from what was in force before it.
    assert labels(records, 6, until=0.085) == ([0, 1, 2, 0, 0, 0], [False, True, True, False, False, False])
    assert labels(records, 4) == ([0, 1, 2, 2], [False, True, True, True])  # held forever
    # A log that starts at 0.12 s: frames whose interval starts before it are unlabelled.
    acts, has = labels([(0.12, 3), (0.15, 0)], 6)
    assert has == [False, False, False, False, True, True] and acts == [0, 0, 0, 0, 0, 0]
    acts, has = labels([(0.1, 3), (0.15, 0)], 6)
    assert has == [False, False, False, True, True, True] and acts == [0, 0, 0, 3, 0, 0]
    assert labels([(0.0, 4)], 1) == ([0], [False])  # nothing leads into frame 0


def test_several_components_combine_independently():
    times = np.array([0.0, 0.02, 0.03, 0.06])
    values = np.array([[1, 0, 0], [1, 2, 0], [0, 0, 0], [3, 0, 0]], np.int16)
    acts, has = actions_leading_into(times, values, 3, 20)
    assert acts.tolist() == [[0, 0, 0], [1, 2, 0], [3, 0, 0]] and has.tolist() == [False, True, True]


@pytest.mark.parametrize("seed", range(6))
def test_matches_the_rule_spelled_out_on_random_logs(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    times = np.cumsum(rng.uniform(0.003, 0.09, n)) - 0.02 * rng.random()
    times = np.round(times, 3)
    times = np.unique(times)
    records = [(float(t), int(rng.choice(4, p=[0.5, 0.2, 0.2, 0.1]))) for t in times]
    until = float(times[-1] + rng.uniform(0.0, 0.1)) if seed % 2 else float("inf")
    num_frames = int(rng.integers(1, 40))
    assert labels(records, num_frames, until=until) == brute_force(records, num_frames, 20, until)
