"""media.py: the synthetic clips say what they claim (timestamps, barcode, rotation, audio only)."""

import shutil
import subprocess
from fractions import Fraction

import av
import numpy as np
import pytest

from ahriuwu_core.testing import media


@pytest.mark.parametrize("size", [(160, 90), (64, 64), (33, 20)])
def test_barcode_roundtrip_raw(size):
    w, h = size
    for i in (0, 1, 2, 511, 512, 1023, 681):
        assert media.read_frame_index(media.draw_frame(i, w, h)) == i


@pytest.mark.parametrize("fps", [Fraction(24), Fraction(30000, 1001), Fraction(60)])
def test_cfr_clip_timestamps_and_barcode_survive_encoding(tmp_path, fps):
    clip = media.make_clip(tmp_path / "c.mp4", seconds=0.5, fps=fps)
    decoded = media.probe_frames(clip.path)
    assert len(decoded) == len(clip.times) == round(0.5 * fps)
    np.testing.assert_allclose([t for t, _ in decoded], [i / float(fps) for i in range(len(decoded))], atol=1e-6)
    assert [media.read_frame_index(a) for _, a in decoded] == list(range(len(decoded)))
    assert clip.duration == pytest.approx(len(decoded) / float(fps))
    with av.open(str(clip.path)) as c:
        assert c.streams.video[0].average_rate == fps and not c.streams.audio


def test_vfr_clip_has_irregular_timestamps(tmp_path):
    clip = media.make_clip(tmp_path / "v.mp4", seconds=1.0, fps=30, vfr=True)
    decoded = media.probe_frames(clip.path)
    np.testing.assert_allclose([t for t, _ in decoded], clip.times, atol=1e-6)
    gaps = np.diff(clip.times)
    assert gaps.min() < 0.8 / 30 and gaps.max() > 1.2 / 30  # irregular, not 1/30 s
    assert [media.read_frame_index(a) for _, a in decoded] == list(range(len(decoded)))


def test_explicit_times(tmp_path):
    times = [0.0, 0.01, 0.2, 0.25, 0.6]
    clip = media.make_clip(tmp_path / "t.mp4", seconds=0.5, fps=10, times=times)
    np.testing.assert_allclose([t for t, _ in media.probe_frames(clip.path)], times, atol=1e-4)
    assert clip.duration == pytest.approx(0.7)  # last frame lasts the nominal 1/fps


def test_rotation_metadata_matches_ffmpeg_autorotate(tmp_path):
    clip = media.make_clip(tmp_path / "r.mp4", seconds=0.3, fps=30, width=160, height=96, rotation=90)
    with av.open(str(clip.path)) as c:
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height, frame.rotation) == (96, 160, 90)
    # an independent player (the ffmpeg CLI autorotates by default) shows the upright pattern
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "ffmpeg CLI missing: `make test` installs it (system-deps)"
    raw = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(clip.path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    imgs = np.frombuffer(raw, np.uint8).reshape(-1, 96, 160, 3)
    assert [media.read_frame_index(a) for a in imgs] == list(range(len(clip.times)))


def test_audio_only_and_patterns(tmp_path):
    path = media.make_audio_only(tmp_path / "a.mp4", seconds=0.5)
    with av.open(str(path)) as c:
        assert not c.streams.video and len(c.streams.audio) == 1
    assert not media.draw_frame(5, 32, 32, "black").any()
    np.testing.assert_array_equal(media.draw_frame(5, 32, 32, "frozen"), media.draw_frame(9, 32, 32, "frozen"))
    assert not np.array_equal(media.draw_frame(5, 32, 32), media.draw_frame(6, 32, 32))
    with pytest.raises(ValueError):
        media.draw_frame(0, 8, 8, "plaid")
