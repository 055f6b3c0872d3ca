from __future__ import annotations

import time

import numpy as np
import pytest

from l2d_obs.config import OBSSettings
from l2d_obs.errors import ConfigError, SourceError
from l2d_obs.sources import SourceOptions, make_source
from l2d_obs.sources.base import CorruptFrame, Pacer
from l2d_obs.sources.device import DeviceSource
from l2d_obs.sources.obs import OBSSource, cover_size, decode_data_url
from l2d_obs.sources.pattern import PatternSource
from l2d_obs.sources.video import VideoFileSource
from tests.daemon.daemon_helpers import write_test_video


@pytest.mark.parametrize(
    "spec, cls, attr, value",
    [
        ("obs:Camera Source", OBSSource, "source_name", "Camera Source"),
        ("device:2", DeviceSource, "device", 2),
        ("/dev/video4", DeviceSource, "device", "/dev/video4"),
        ("device:/dev/video1", DeviceSource, "device", "/dev/video1"),
        ("file:/tmp/a b.mp4", VideoFileSource, "path", __import__("pathlib").Path("/tmp/a b.mp4")),
        ("pattern", PatternSource, "width", 640),
    ],
)
def test_source_specs(spec, cls, attr, value):
    src = make_source(spec, OBSSettings(), SourceOptions())
    assert isinstance(src, cls)
    assert getattr(src, attr) == value


@pytest.mark.parametrize("spec", ["camera:0", "obs:", "file:", "device:", "rtsp://x"])
def test_bad_source_specs(spec):
    with pytest.raises((ConfigError, SourceError)):
        make_source(spec)


def test_pattern_moves_and_is_paced():
    src = PatternSource(64, 48, fps=50, limit=10)
    src.open()
    t0 = time.monotonic()
    frames = [src.read() for _ in range(10)]
    elapsed = time.monotonic() - t0
    assert src.read() is None
    assert [f.index for f in frames] == list(range(10))
    assert frames[0].pixels.shape == (48, 64, 3)
    assert not np.array_equal(frames[0].pixels, frames[5].pixels)
    assert 0.15 <= elapsed < 1.0  # 9 periods of 20 ms


def test_pacer_does_not_drift():
    p = Pacer(100)
    t0 = time.monotonic()
    for _ in range(30):
        p.wait()
    assert 0.27 <= time.monotonic() - t0 < 0.6


def test_file_source_reads_every_frame_in_order(tmp_path):
    expected = write_test_video(tmp_path / "in.avi", 12)
    src = VideoFileSource(tmp_path / "in.avi", pace=False)
    src.open()
    assert src.native_size == (96, 64) and src.fps == pytest.approx(30)
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    src.close()
    assert [f.index for f in frames] == list(range(12))
    for got, want in zip(frames, expected):
        assert np.array_equal(got.pixels, want)


def test_file_source_paces_and_loops(tmp_path):
    write_test_video(tmp_path / "in.avi", 5, fps=25)
    src = VideoFileSource(tmp_path / "in.avi", pace=True, loop=True)
    src.open()
    t0 = time.monotonic()
    frames = [src.read() for _ in range(12)]
    assert time.monotonic() - t0 >= 11 / 25 - 0.02
    assert [f.index for f in frames] == list(range(12))
    assert np.array_equal(frames[0].pixels, frames[5].pixels)  # looped


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        VideoFileSource(tmp_path / "nope.mp4").open()
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(SourceError, match="cannot open"):
        VideoFileSource(tmp_path / "junk.mp4").open()


def test_missing_camera_lists_devices():
    with pytest.raises(SourceError, match=r"cannot open camera /dev/video97 \(video devices: "):
        DeviceSource("/dev/video97").open()


def test_decode_data_url_rejects_garbage():
    with pytest.raises(CorruptFrame):
        decode_data_url("data:image/jpg;base64,AAAA")
    with pytest.raises(CorruptFrame):
        decode_data_url("no comma here")


def test_cover_size_only_needs_a_crop():
    assert cover_size(16 / 9, 64, 64) == (114, 64)
    assert cover_size(9 / 16, 64, 64) == (64, 114)
    assert cover_size(1.0, 512, 256) == (512, 512)
