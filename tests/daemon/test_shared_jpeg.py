"""Several JPEG outputs encode each published frame once (issue 10: one JPEG encode shared by sinks)."""

from __future__ import annotations

import cv2
import numpy as np

from l2d_obs.frames import Frame
from l2d_obs.sinks import base
from l2d_obs.sinks.mjpeg import MJPEGSink


def counting_encoder(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = base.encode_jpeg

    def encode(pixels, quality=85):
        calls.append(quality)
        return real(pixels, quality)

    monkeypatch.setattr(base, "encode_jpeg", encode)
    return calls


def test_one_encode_per_frame_and_quality(monkeypatch):
    calls = counting_encoder(monkeypatch)
    a = Frame(np.full((16, 24, 3), 90, np.uint8), 0)
    b = Frame(np.full((16, 24, 3), 90, np.uint8), 1)  # equal pixels, another frame: encoded again
    first = base.frame_jpeg(a)
    assert base.frame_jpeg(a) is first and calls == [85]
    assert base.frame_jpeg(a, 60) != first and calls == [85, 60]
    base.frame_jpeg(b, 60)
    assert calls == [85, 60, 60]
    decoded = cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (16, 24, 3) and abs(int(decoded.mean()) - 90) <= 2


def test_two_mjpeg_outputs_share_the_encode(monkeypatch):
    calls = counting_encoder(monkeypatch)
    sinks = [MJPEGSink(0), MJPEGSink(0)]
    for sink in sinks:
        sink.open(32, 24, 30)
    try:
        for i in range(5):
            frame = Frame(np.random.default_rng(i).integers(0, 255, (24, 32, 3), dtype=np.uint8), i)
            for sink in sinks:
                sink.write(frame)
    finally:
        for sink in sinks:
            sink.close()
    assert len(calls) == 5
