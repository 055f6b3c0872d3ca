"""The daemon with the real (tiny, CPU) engine: threads, hand-offs, pacing, faults, shutdown."""

from __future__ import annotations

import statistics
import threading
import time

import cv2
import numpy as np
import psutil
import pytest

from l2d_obs.daemon import Daemon, DaemonConfig
from l2d_obs.errors import ConfigError, ProfileError, SourceError
from l2d_obs.frames import Frame
from l2d_obs.imageops import fit
from l2d_obs.sources.base import CorruptFrame, Pacer, Source, SourceLost
from l2d_obs.sources.pattern import PatternSource
from l2d_obs.sources.video import VideoFileSource
from l2d_obs.sinks.video import VideoFileSink
from tests.daemon.daemon_helpers import (
    RecordingSink, SlowEngine, real_engine_factory, run_in_thread, tiny, wait_until, write_test_video,
)
from tests.switching.switching_helpers import tiny_variant


@pytest.fixture(scope="module")
def engine():
    """One real tiny engine for the module (building one takes seconds); reset before each use."""
    return real_engine_factory(tiny())


@pytest.fixture
def factory(engine):
    calls = []

    def make(profile):
        calls.append(profile.name)
        engine.reset()
        return engine

    make.calls = calls
    return make


def test_file_in_file_out_keeps_count_order_and_pixels(tmp_path, factory, engine):
    inputs = write_test_video(tmp_path / "in.avi", 20)
    out = tmp_path / "out"
    d = Daemon(tiny(), VideoFileSource(tmp_path / "in.avi", pace=False), [VideoFileSink(str(out) + "/")], factory)
    final = d.run()
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"frame_{i:06d}.png" for i in range(20)]
    assert final["frames_published"] == 20 and final["dropped_input"] == 0 and final["frames_repeated"] == 0
    # Same frames through the engine directly: the daemon must publish exactly these, in this order.
    engine.reset()
    direct = []
    for i, px in enumerate(inputs):
        direct += engine.push(Frame(fit(px, engine.width, engine.height), i))
    direct += engine.flush()
    assert [f.index for f in direct] == list(range(20))
    for f in direct:
        got = cv2.cvtColor(cv2.imread(str(out / f"frame_{f.index:06d}.png")), cv2.COLOR_BGR2RGB)
        want = fit(f.pixels, 96, 64)
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 2, f"frame {f.index} differs"


class BigFrameSource(Source):
    """A live 1280x720 source at 30 fps (cheap to produce), so a backlog would show in memory at once."""

    def __init__(self, fps: float = 30.0) -> None:
        super().__init__()
        self._fps, self._pacer = fps, Pacer(fps)
        rng = np.random.default_rng(0)
        self._bank = [rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8) for _ in range(4)]

    name = "big"
    fps = property(lambda self: self._fps)
    native_size = property(lambda self: (320, 180))

    def open(self) -> None:
        self._pacer.reset()

    def read(self) -> Frame:
        self._pacer.wait()
        return self._frame(self._bank[self._next_index % 4].copy())

    def close(self) -> None:
        pass


def test_slow_engine_drops_input_frames_without_backlog(factory):
    slow = {}

    def make_slow(p):
        slow["engine"] = SlowEngine(factory(p), delay=0.15)  # ~5 fps against a 30 fps source
        return slow["engine"]

    rec = RecordingSink(keep_pixels=False)
    d = Daemon(tiny(), BigFrameSource(), [rec], make_slow, DaemonConfig(max_frames=25))
    proc = psutil.Process()
    rss: list[int] = []
    sampler_stop = threading.Event()

    def sample() -> None:
        while not sampler_stop.wait(0.25):
            if d.stats.frames_published >= 3:
                rss.append(proc.memory_info().rss)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    final = d.run()
    sampler_stop.set()
    t.join()

    pushed = slow["engine"].pushed
    assert final["frames_published"] == 25
    # Every frame the engine did not take was dropped at the input, none is waiting anywhere.
    assert final["dropped_input"] >= final["frames_captured"] - len(pushed) - 1
    assert final["dropped_input"] > 2 * len(pushed)
    assert max(np.diff(pushed)) > 1  # the engine saw the newest frames, skipping the rest
    # Latency stays bounded: the last frames are no later than the first steady ones.
    lat = [r[0] - r[1].captured_at for r in rec.records if r[1].index >= 0][:0] or [
        lat for _, lat in d.stats.latencies
    ]
    steady = lat[2:]
    assert max(steady) < 1.0, steady
    assert statistics.median(steady[-5:]) <= statistics.median(steady[:5]) + 0.1, steady
    # A backlog of 1280x720 frames would grow memory by 2.7 MB per frame (~80 MB/s at 30 fps).
    assert len(rss) >= 4
    assert rss[-1] - rss[0] < 60 * 2**20, [r // 2**20 for r in rss]
    # The output kept the source's pace by repeating the last frame between slow engine outputs.
    assert final["frames_repeated"] > 0
    gaps = np.diff([r[0] for r in rec.records])
    assert statistics.median(gaps) == pytest.approx(1 / 30, abs=0.012)


class FlakySource(PatternSource):
    """A pattern that sends a corrupt frame every 5th read and 'unplugs' once (like a camera)."""

    def __init__(self, lose_at: int, fail_opens: int) -> None:
        super().__init__(80, 60, fps=30)
        self.lose_at, self.fail_opens, self.opens, self.reads = lose_at, fail_opens, 0, 0
        self.lost = False

    def open(self) -> None:
        self.opens += 1
        if self.lost and self.fail_opens > 0:
            self.fail_opens -= 1
            raise SourceError("camera 9 is not there")
        super().open()

    def read(self):
        self.reads += 1
        if self.reads == self.lose_at and not self.lost:
            self.lost = True
            raise SourceLost("camera 9 stopped delivering frames (unplugged?)")
        if self.reads % 5 == 0:
            self._next_index += 1
            raise CorruptFrame("unreadable frame")
        return super().read()


def test_corrupt_frames_are_skipped_and_a_lost_source_comes_back(factory):
    src = FlakySource(lose_at=30, fail_opens=2)
    rec = RecordingSink(keep_pixels=False)
    d = Daemon(tiny(), src, [rec], factory, DaemonConfig(max_frames=40))
    thread, result = run_in_thread(d.run)
    assert wait_until(lambda: d.stats.reconnects == 1, 60)
    published_at_loss = d.stats.frames_published
    repeated_at_loss = d.stats.frames_repeated
    time.sleep(0.6)  # source is away (two failed reopens with backoff): the output keeps going
    assert d.stats.frames_repeated > repeated_at_loss
    assert d.status()["source_state"] in ("reconnecting", "live")
    thread.join(60)
    assert "error" not in result, result
    final = result["value"]
    assert final["frames_published"] == 40 > published_at_loss
    assert final["corrupt_frames"] >= 5
    assert final["reconnects"] == 1 and final["source_state"] == "live"
    assert src.opens == 4  # first open, two failures, success


def test_stop_shuts_down_quickly_and_releases_everything(factory):
    rec = RecordingSink(keep_pixels=False)
    d = Daemon(tiny(), PatternSource(80, 60, 30), [rec], factory, DaemonConfig(control_port=0))
    thread, result = run_in_thread(d.run)
    assert wait_until(lambda: d.stats.frames_published >= 3, 60)
    control_file = d.control.path
    assert control_file.exists()
    t0 = time.monotonic()
    d.stop()
    thread.join(5)
    assert time.monotonic() - t0 < 2.0
    assert not thread.is_alive() and "error" not in result
    assert rec.closed and not control_file.exists()
    assert not [t for t in threading.enumerate() if t.name.startswith("l2d-")]


def test_switch_validates_then_swaps_between_frames(tmp_path, monkeypatch):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "B.toml").write_text(tiny_variant("B", 101))  # another style (tiny is on screen)
    monkeypatch.setenv("L2D_PROFILES_DIR", str(tmp_path / "profiles"))
    built = []

    def make(profile):
        engine = real_engine_factory(profile)  # its own, not the module's: the switch changes its style
        built.append(engine)
        return engine

    rec = RecordingSink(keep_pixels=False)
    d = Daemon(tiny(), PatternSource(80, 60, 30), [rec], make)
    thread, result = run_in_thread(d.run)
    try:
        assert wait_until(lambda: d.stats.frames_published >= 2, 60)
        with pytest.raises(ProfileError, match="unknown profile 'no-such-style'"):
            d.request_switch("no-such-style")
        assert d.request_switch("B") == {"switching_to": "B"}
        assert wait_until(lambda: d.status()["switch"].get("state") == "active", 30)
        # The real engine switches in place: prepared on the switch thread, re-warmed between frames.
        assert len(built) == 1 and d._engine is built[0] and built[0].stats.switches == 1
        assert d.status()["switch"]["latency_ms"] > 0
        n = d.stats.frames_published
        assert wait_until(lambda: d.stats.frames_published > n + 2, 60)  # frames flow after the swap
    finally:
        d.stop()
        thread.join(5)
    assert "error" not in result


def test_no_outputs_is_a_config_error(factory):
    with pytest.raises(ConfigError, match="no output"):
        Daemon(tiny(), PatternSource(), [], factory)


def test_source_error_at_start_is_raised_and_wait_retries(factory):
    class Absent(PatternSource):
        opens = 0

        def open(self):
            Absent.opens += 1
            if Absent.opens < 3:
                raise SourceError("OBS is not running")
            super().open()

    with pytest.raises(SourceError, match="OBS is not running"):
        Daemon(tiny(), Absent(80, 60), [RecordingSink()], factory).run()
    Absent.opens = 0
    final = Daemon(tiny(), Absent(80, 60, limit=30), [RecordingSink()], factory,
                   DaemonConfig(wait=True, max_frames=3)).run()
    assert Absent.opens == 3 and final["frames_published"] == 3


def test_vcam_gets_every_published_frame_in_order_at_the_input_pace(factory):
    import pyvirtualcam
    from pyvirtualcam.util import decode_fourcc

    from l2d_obs.sinks.virtualcam import VirtualCamSink
    from tests.daemon.test_sinks import RecorderBackend

    pyvirtualcam.register_backend("l2d-test-recorder", RecorderBackend)
    RecorderBackend.instances.clear()
    try:
        rec = RecordingSink()
        d = Daemon(tiny(), PatternSource(160, 120, fps=30), [VirtualCamSink(backend="l2d-test-recorder"), rec],
                   factory, DaemonConfig(max_frames=30, output_size=(96, 72)))
        final = d.run()
    finally:
        pyvirtualcam.camera.BACKENDS.pop("l2d-test-recorder", None)
    cam = RecorderBackend.instances[0]
    assert (cam.width, cam.height, cam.fps) == (96, 72, 30)
    assert decode_fourcc(cam.fourcc) == pyvirtualcam.PixelFormat.RGB.value and cam.closed == 1
    # Exactly what the daemon published (new and repeated frames), in the same order.
    assert len(cam.frames) == len(rec.records) == final["frames_published"] + final["frames_repeated"]
    for (_, sent), (_, frame) in zip(cam.frames, rec.records):
        assert sent.shape == (96 * 72 * 3,)
        assert np.array_equal(sent.reshape(72, 96, 3), frame.pixels)
    indices = [f.index for _, f in rec.records]
    assert indices == sorted(indices)
    # Paced at the source's 30 fps: no bursts, no long gaps once the engine is warm.
    gaps = np.diff([t for t, _ in cam.frames])
    assert statistics.median(gaps) == pytest.approx(1 / 30, abs=0.01)
    assert gaps.min() > 0.7 / 30
