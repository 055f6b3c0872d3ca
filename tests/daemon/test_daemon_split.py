"""The daemon's engine protocol and its one switching path (in place for the stream engine, rebuilt for
anything else), and camera frames fitted to the engine's size on the capture thread, not the engine's."""

from __future__ import annotations

import collections
import threading

import pytest

from l2d_obs.daemon import Daemon, DaemonConfig, InPlaceEngine, RebuildingEngine, stages, switchable
from l2d_obs.frames import Frame
from l2d_obs.sources.pattern import PatternSource
from tests.daemon.daemon_helpers import RecordingSink, real_engine_factory, run_in_thread, tiny, wait_until
from tests.switching.switching_helpers import tiny_variant


class SizeRecordingEngine:
    """Passes frames through; writes down the (width, height) of every frame pushed and which thread pushed."""

    def __init__(self, profile) -> None:
        self.width, self.height = profile.width, profile.height
        self.pushed: list[tuple[int, int]] = []

    def push(self, frame: Frame) -> list[Frame]:
        self.pushed.append((frame.width, frame.height))
        return [frame]

    def flush(self) -> list[Frame]:
        return []

    def reset(self) -> None:
        pass


class RecordingWrapper:
    """The real engine, with the size of every frame its push() receives written down."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.pushed: list[tuple[int, int, int, int]] = []  # frame w, h; engine w, h at that moment

    def __getattr__(self, name):  # width, height, settings, style, apply_style, ...: the real engine's
        return getattr(self.inner, name)

    def push(self, frame: Frame) -> list[Frame]:
        self.pushed.append((frame.width, frame.height, self.inner.width, self.inner.height))
        return self.inner.push(frame)

    def flush(self) -> list[Frame]:
        return self.inner.flush()

    def reset(self) -> None:
        self.inner.reset()


@pytest.fixture
def fits_by_thread(monkeypatch):
    """Counts imageops.fit calls made by the daemon's stages, per thread name."""
    counts: collections.Counter = collections.Counter()
    lock = threading.Lock()
    real_fit = stages.fit

    def counting_fit(pixels, width, height):
        with lock:
            counts[threading.current_thread().name] += 1
        return real_fit(pixels, width, height)

    monkeypatch.setattr(stages, "fit", counting_fit)
    return counts


@pytest.fixture
def wide_profile(tmp_path, monkeypatch):
    """A profile 'wide' of the tiny model at 128x64 (another size and aspect than tiny's 64x64)."""
    (tmp_path / "profiles").mkdir()
    text = tiny_variant("wide", 77).replace("width = 64", "width = 128")
    (tmp_path / "profiles" / "wide.toml").write_text(text)
    monkeypatch.setenv("L2D_PROFILES_DIR", str(tmp_path / "profiles"))
    return "wide"


def test_switchable_decides_once_what_an_engine_can_do():
    fake = SizeRecordingEngine(tiny())
    engine, library = switchable(fake, SizeRecordingEngine, library_for=lambda e: pytest.fail("no library for a fake"))
    assert isinstance(engine, RebuildingEngine) and library is None and engine.inner is fake
    assert (engine.width, engine.height, engine.warmup) == (64, 64, 1)

    class SwitchesInPlace(SizeRecordingEngine):
        def apply_style(self, style, recent=None):
            return []

    made = []
    inner = SwitchesInPlace(tiny())
    engine, library = switchable(inner, SizeRecordingEngine, library_for=lambda e: made.append(e) or "library")
    assert isinstance(engine, InPlaceEngine) and engine.inner is inner and library == "library" and made == [inner]


def test_a_rebuilt_engine_is_swapped_by_apply_style():
    built = []

    def factory(profile):
        built.append(SizeRecordingEngine(profile))
        return built[-1]

    engine = RebuildingEngine(factory(tiny()), factory)
    prepared = engine.prepare_style(tiny())
    assert engine.inner is built[0] and prepared is built[1]  # preparing builds, nothing changes yet
    assert engine.apply_style(prepared, recent=[]) == [] and engine.inner is built[1]


def test_frames_reach_push_fitted_to_the_engine_size_by_the_capture_thread(fits_by_thread):
    engines: list[SizeRecordingEngine] = []

    def factory(profile):
        engines.append(SizeRecordingEngine(profile))
        return engines[-1]

    d = Daemon(tiny(), PatternSource(320, 180, fps=30), [RecordingSink(keep_pixels=False)], factory,
               DaemonConfig(max_frames=30))
    d.run()
    (engine,) = engines
    assert (engine.width, engine.height) == (88, 48)  # tiny's budget at 16:9
    assert len(engine.pushed) >= 30 and set(engine.pushed) == {(88, 48)}
    assert fits_by_thread["l2d-capture"] >= len(engine.pushed)
    assert fits_by_thread["l2d-engine"] == 0, fits_by_thread  # the engine thread only runs the engine
    assert fits_by_thread["l2d-output"] >= 30  # styled frames to the 320x180 output


def test_after_a_switch_to_another_size_push_still_gets_frames_of_its_size(fits_by_thread, wide_profile):
    engines: list[SizeRecordingEngine] = []

    def factory(profile):
        engines.append(SizeRecordingEngine(profile))
        return engines[-1]

    d = Daemon(tiny(), PatternSource(160, 120, fps=30), [RecordingSink(keep_pixels=False)], factory,
               DaemonConfig(keep_source_aspect=False))
    thread, result = run_in_thread(d.run)
    try:
        assert wait_until(lambda: d.stats.frames_published >= 5, 30)
        assert d.request_switch(wide_profile) == {"switching_to": "wide"}
        assert wait_until(lambda: d.status()["switch"].get("state") == "active", 30), d.status()["switch"]
        assert wait_until(lambda: len(engines) == 2 and len(engines[1].pushed) >= 20, 30)
    finally:
        d.stop()
        thread.join(10)
    assert "error" not in result, result
    old, new = engines
    assert set(old.pushed) == {(64, 64)} and set(new.pushed) == {(128, 64)}
    assert d.profile.name == "wide" and d._engine is new
    # Only a frame captured just before the swap (still at the old size) is fitted again on the engine thread.
    assert fits_by_thread["l2d-engine"] <= 2, fits_by_thread
    assert fits_by_thread["l2d-capture"] >= len(old.pushed) + len(new.pushed)


def test_the_stream_engine_switches_in_place_and_push_gets_the_new_size(fits_by_thread, wide_profile):
    wrappers: list[RecordingWrapper] = []

    def factory(profile):
        wrappers.append(RecordingWrapper(real_engine_factory(profile)))
        return wrappers[-1]

    d = Daemon(tiny(), PatternSource(160, 120, fps=30), [RecordingSink(keep_pixels=False)], factory,
               DaemonConfig(keep_source_aspect=False))
    thread, result = run_in_thread(d.run)
    try:
        assert wait_until(lambda: d.phase == "running", 120), d.status()
        assert isinstance(d.engine, InPlaceEngine) and d.styles is not None
        d.request_switch(wide_profile)
        assert wait_until(lambda: d.status()["switch"].get("state") == "active", 60), d.status()["switch"]
        wrapper = wrappers[0]
        n = len(wrapper.pushed)
        assert wait_until(lambda: len(wrapper.pushed) >= n + 5, 60)
    finally:
        d.stop()
        thread.join(10)
    assert "error" not in result, result
    assert len(wrappers) == 1 and d._engine is wrappers[0] and wrappers[0].inner.stats.switches == 1
    assert (d.engine.width, d.engine.height) == (128, 64) and d.status()["styles"]["active"] == "wide"
    # Every push got a frame at the size the engine had then; the re-warm ran inside the engine.
    assert all((fw, fh) == (ew, eh) for fw, fh, ew, eh in wrappers[0].pushed)
    assert (128, 64, 128, 64) in wrappers[0].pushed
    assert fits_by_thread["l2d-engine"] <= 2, fits_by_thread
