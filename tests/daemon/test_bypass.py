"""Bypass: the raw camera goes out fitted to the output size and the engine is not called at all; off,
styling resumes from a fresh stream warmed with the newest camera frames. Through the daemon, its
control API (POST /bypass) and `l2d-obs bypass on|off`."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from l2d_obs.control.client import ControlClient
from l2d_obs.daemon import Daemon, DaemonConfig
from l2d_obs.errors import ControlError
from l2d_obs.imageops import fit
from l2d_obs.sources.pattern import PatternSource
from tests.switching.switching_helpers import tiny_variant
from tests.daemon.daemon_helpers import RecordingSink, cli_env, cli_run, real_engine_factory, run_in_thread, tiny, wait_until

OUTPUT_SIZE = (96, 72)  # neither the source's 80x60 nor the engine's 64x64: fitting is visible


class CountingEngine:
    """The real tiny engine, with every call it receives written down (push indices, resets)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.pushed: list[int] = []
        self.resets: list[int] = []  # len(pushed) at each reset
        self._lock = threading.Lock()

    def __getattr__(self, name):  # width, height, settings, apply_style, ...: the real engine's
        return getattr(self.inner, name)

    def push(self, frame):
        with self._lock:
            self.pushed.append(frame.index)
        return self.inner.push(frame)

    def flush(self):
        return self.inner.flush()

    def reset(self) -> None:
        with self._lock:
            self.resets.append(len(self.pushed))
        self.inner.reset()

    def calls(self) -> int:
        with self._lock:
            return len(self.pushed) + len(self.resets)


@pytest.fixture
def running():
    """A daemon on an 80x60 pattern with the counting tiny engine, output 96x72, control API on a free port."""
    source = PatternSource(80, 60, fps=30)
    sink = RecordingSink()
    engines: list[CountingEngine] = []

    def factory(profile):
        engines.append(CountingEngine(real_engine_factory(profile)))
        return engines[-1]

    d = Daemon(tiny(), source, [sink], factory, DaemonConfig(control_port=0, output_size=OUTPUT_SIZE))
    thread, result = run_in_thread(d.run)
    try:
        assert wait_until(lambda: d.stats.frames_published >= 3 or not thread.is_alive(), 90), result
        assert thread.is_alive(), result
        yield d, source, sink, engines[0]
    finally:
        d.stop()
        thread.join(10)
    assert not thread.is_alive() and "error" not in result, result


def new_records(sink: RecordingSink, after: int):
    return [frame for _, frame in sink.records[after:]]


def raw_fitted(source: PatternSource, index: int) -> np.ndarray:
    return fit(source.render(index), *OUTPUT_SIZE)


def test_bypass_sends_the_fitted_camera_and_leaves_the_engine_idle(running):
    d, source, sink, engine = running
    assert d.status()["bypass"] is False
    styled = new_records(sink, 0)[-1]
    assert styled.pixels.shape == (OUTPUT_SIZE[1], OUTPUT_SIZE[0], 3)
    assert not np.array_equal(styled.pixels, raw_fitted(source, styled.index)), "styled output equals the camera"

    assert d.set_bypass(True) == {"bypass": True}
    assert d.status()["bypass"] is True and "bypass" in d.status_line()
    # Let the frame in flight finish, then nothing may reach the engine while frames keep going out.
    assert wait_until(lambda: any(np.array_equal(f.pixels, raw_fitted(source, f.index))
                                  for f in new_records(sink, len(sink.records) - 1)), 10)
    calls, published = engine.calls(), d.stats.frames_published
    mark = len(sink.records)
    assert wait_until(lambda: d.stats.frames_published >= published + 15, 10)
    assert engine.calls() == calls, "the engine was called during bypass"
    raw = new_records(sink, mark)
    assert raw and all(f.pixels.shape == (OUTPUT_SIZE[1], OUTPUT_SIZE[0], 3) for f in raw)
    assert all(np.array_equal(f.pixels, raw_fitted(source, f.index)) for f in raw)


def test_bypass_off_resumes_from_a_fresh_stream_warmed_with_the_newest_frames(running):
    d, source, sink, engine = running
    d.set_bypass(True)
    mark = len(sink.records)

    def raw_out() -> list:
        return [f for f in new_records(sink, mark) if np.array_equal(f.pixels, raw_fitted(source, f.index))]

    warmup = engine.settings.warmup
    assert wait_until(lambda: len({f.index for f in raw_out()}) >= warmup + 4, 20)  # the camera moved on meanwhile
    first_raw = raw_out()[0].index
    pushed_before = len(engine.pushed)
    mark = len(sink.records)
    d.set_bypass(False)
    assert d.status()["bypass"] is False
    newest_raw = max(f.index for _, f in sink.records)

    def styled_again() -> bool:
        frames = new_records(sink, mark)
        return any(not np.array_equal(f.pixels, raw_fitted(source, f.index)) for f in frames)

    assert wait_until(styled_again, 20), "styling did not resume"
    assert engine.resets and engine.resets[-1] == pushed_before, "the stream was not reset at resume"
    rewarm = engine.pushed[pushed_before:pushed_before + warmup]
    assert len(rewarm) == warmup
    # The newest camera frames, all from during the bypass: nothing from before the gap.
    assert rewarm == sorted(rewarm) and rewarm[0] > first_raw and rewarm[-1] >= newest_raw, \
        f"re-warmed from {rewarm}; bypass showed frames {first_raw}..{newest_raw}"
    # Styled frames keep coming, with styled (not raw) pixels.
    n = d.stats.frames_published
    assert wait_until(lambda: d.stats.frames_published >= n + 5, 20)
    last = sink.records[-1][1]
    assert not np.array_equal(last.pixels, raw_fitted(source, last.index))


def test_a_switch_asked_during_bypass_waits_and_then_re_warms_once(running, tmp_path, monkeypatch):
    d, source, sink, engine = running
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "B.toml").write_text(tiny_variant("B", 101))  # same model, another style
    monkeypatch.setenv("L2D_PROFILES_DIR", str(tmp_path / "profiles"))
    d.set_bypass(True)
    assert wait_until(lambda: np.array_equal(sink.records[-1][1].pixels, raw_fitted(source, sink.records[-1][1].index)), 10)
    calls = engine.calls()
    d.request_switch("B")  # prepared, then held back while bypassed
    assert wait_until(lambda: d._pending is not None, 30)
    n = d.stats.frames_published
    assert wait_until(lambda: d.stats.frames_published >= n + 10, 10)
    assert engine.calls() == calls and d.status()["bypass"] is True
    resets = len(engine.resets)
    d.set_bypass(False)
    assert wait_until(lambda: d.status()["switch"].get("state") == "active", 20), d.status()["switch"]
    assert engine.inner.stats.switches == 1
    n = d.stats.frames_published
    assert wait_until(lambda: d.stats.frames_published >= n + 3, 20)
    assert len(engine.resets) == resets, "the switch re-warmed already; the stream was reset a second time"


def test_control_api_and_cli_toggle_bypass(running, monkeypatch):
    d, *_ = running
    client = ControlClient()
    assert client.request("POST", "/bypass", {"on": True}) == {"bypass": True}
    assert client.status()["bypass"] is True
    env = cli_env()
    out = cli_run("bypass", "off", env=env)
    assert out.returncode == 0 and "styling resumes" in out.stdout, out.stderr
    assert client.status()["bypass"] is False
    out = cli_run("status", env=env)
    assert "BYPASS" not in out.stdout
    assert cli_run("bypass", "on", env=env).returncode == 0
    assert "BYPASS (raw camera)" in cli_run("status", env=env).stdout
    for body in ({"on": "yes"}, {}, {"on": 1}, {"on": True, "extra": 1}):
        with pytest.raises(ControlError, match=r'body must be \{"on": true\} or \{"on": false\}'):
            client.request("POST", "/bypass", body)
    assert d.status()["bypass"] is True  # a bad request changed nothing
    bad = cli_run("bypass", "maybe", env=env)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "'on' or 'off'" in bad.stderr, bad.stderr


def test_bypass_without_a_daemon_is_one_line(tmp_path, monkeypatch):
    out = cli_run("bypass", "on", env=cli_env({"L2D_STATE_DIR": str(tmp_path / "none")}))
    assert out.returncode != 0 and "no running daemon found" in out.stderr and "Traceback" not in out.stderr
