"""The engine runs at the source's aspect ratio (a profile's size is a pixel budget), so a 16:9 camera is
styled whole; and a request for the style already on screen (e.g. a scene rule) changes nothing."""

from __future__ import annotations

import pytest

from l2d_obs.daemon import Daemon, DaemonConfig, default_engine_factory
from l2d_obs.imageops import size_for_aspect
from l2d_obs.sources.pattern import PatternSource
from tests.daemon.daemon_helpers import RecordingSink, run_in_thread, tiny, wait_until


@pytest.mark.parametrize("budget,aspect,expected", [
    ((128, 128), 16 / 9, (168, 96)), ((128, 128), 9 / 16, (96, 168)), ((128, 128), 4 / 3, (144, 112)),
    ((512, 512), 16 / 9, (680, 384)), ((512, 288), 16 / 9, (512, 288)), ((64, 64), 1.0, (64, 64)),
])
def test_size_for_aspect_keeps_the_pixel_budget(budget, aspect, expected):
    w, h = size_for_aspect(*budget, aspect)
    assert (w, h) == expected
    assert w % 8 == 0 and h % 8 == 0
    assert abs(w * h / (budget[0] * budget[1]) - 1) < 0.05
    assert abs(w / h / aspect - 1) < 0.1


def run_daemon(config: DaemonConfig, size=(640, 360)):
    sink = RecordingSink(keep_pixels=True)
    daemon = Daemon(tiny(), PatternSource(*size, fps=30), [sink], default_engine_factory("cpu", "fp32"), config)
    thread, result = run_in_thread(daemon.run)
    assert wait_until(lambda: daemon.phase == "running", 120), daemon.status()
    return daemon, sink, thread, result


def test_a_wide_source_is_styled_whole_and_switching_keeps_its_shape():
    daemon, sink, thread, _ = run_daemon(DaemonConfig())
    try:
        assert (daemon.profile.width, daemon.profile.height) == (88, 48)  # tiny's 64x64 at 16:9
        assert (daemon._engine.width, daemon._engine.height) == (88, 48)
        assert sink.opened_with[:2] == (640, 360)
        calls = []
        apply_style = daemon._engine.apply_style
        daemon._engine.apply_style = lambda *a, **k: calls.append(1) or apply_style(*a, **k)
        # the active style again (a scene rule, a hotkey pressed twice): no preparation, no re-warm
        assert daemon.request_switch("tiny") == {"switching_to": "tiny", "already_active": True}
        published = daemon.stats.frames_published
        assert wait_until(lambda: daemon.stats.frames_published > published + 5, 30)
        assert calls == [] and daemon.status()["switch"] == {}
    finally:
        daemon.stop()
        thread.join(10)


def test_the_profile_shape_is_kept_when_asked():
    daemon, sink, thread, _ = run_daemon(DaemonConfig(keep_source_aspect=False))
    try:
        assert (daemon._engine.width, daemon._engine.height) == (64, 64)
        assert sink.opened_with[:2] == (640, 360)
    finally:
        daemon.stop()
        thread.join(10)
