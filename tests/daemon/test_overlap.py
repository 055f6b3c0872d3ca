"""The daemon hands an overlapping engine the next camera frame while it is already waiting, and what
it publishes is exactly what it publishes without the overlap."""

from __future__ import annotations

import cv2
import numpy as np

from l2d_obs.daemon import Daemon
from l2d_obs.engine.accel import Accelerations
from l2d_obs.factory import build_engine
from l2d_obs.sinks.video import VideoFileSink
from l2d_obs.sources.video import VideoFileSource
from tests.daemon.daemon_helpers import tiny, write_test_video


def _run(tmp_path, name: str, overlap: bool) -> tuple[list[np.ndarray], int]:
    engine = build_engine(tiny(), device="cpu", accel=Accelerations(overlap=overlap))  # inline on the CPU
    started = []
    start = engine._side.start
    engine._side.start = lambda pixels, work: (started.append(1), start(pixels, work))[1]
    out = tmp_path / name
    daemon = Daemon(tiny(), VideoFileSource(tmp_path / "in.avi", pace=False), [VideoFileSink(str(out) + "/")],
                    lambda profile: engine)
    final = daemon.run()
    assert final["frames_published"] == 24
    frames = [cv2.imread(str(p)) for p in sorted(out.iterdir())]
    return frames, len(started)


def test_overlap_prefetches_waiting_frames_and_publishes_the_same_frames(tmp_path):
    write_test_video(tmp_path / "in.avi", 24)
    plain, plain_prefetches = _run(tmp_path, "plain", overlap=False)
    ahead, prefetches = _run(tmp_path, "ahead", overlap=True)
    assert plain_prefetches == 0
    # A file source reads ahead of the engine (its queue holds 2), so nearly every next frame is waiting.
    assert prefetches >= 12, prefetches
    assert len(ahead) == len(plain) == 24
    assert all(np.array_equal(a, b) for a, b in zip(ahead, plain))
