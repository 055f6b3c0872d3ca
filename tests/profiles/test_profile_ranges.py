"""Profile values the engine cannot take are refused up front - by `profiles check` and by a switch to a
running daemon (4xx, nothing changes, the stream goes on) - naming file, field, value and range."""

from __future__ import annotations

import subprocess
import sys

import pytest

from l2d_obs.control.client import ControlClient
from l2d_obs.daemon import Daemon, DaemonConfig
from l2d_obs.errors import ControlError
from l2d_obs.profiles import SHIPPED_PROFILES_DIR, load_profile
from l2d_obs.sources.pattern import PatternSource
from tests.daemon.daemon_helpers import RecordingSink, real_engine_factory, run_in_thread, wait_until

TINY = (SHIPPED_PROFILES_DIR / "tiny.toml").read_text()
TOON = (SHIPPED_PROFILES_DIR / "toon.toml").read_text()

# name -> (profile text, field named in the refusal, the range it must state)
OUT_OF_RANGE = {
    "seed-huge": (TINY.replace("seed = 42", f"seed = {2**64 + 5}"), "seed", "0..9223372036854775807"),
    "seed-negative": (TINY.replace("seed = 42", "seed = -1"), "seed", "0..9223372036854775807"),
    "width-huge": (TINY.replace("width = 64", "width = 100000"), "width", "8..2048"),
    "height-odd": (TINY.replace("height = 64", "height = 60"), "height", "multiple of 8"),
    "steps-huge": (TINY.replace("num_inference_steps = 50", "num_inference_steps = 1000000000"), "num_inference_steps", "1..50"),
    "window-huge": (TINY.replace("window = 16", "window = 40"), "window", "2..32"),
    # 28 is within what any model may have, but toon's motion modules know 24 positions.
    "window-past-pe": (TOON.replace("window = 16", "window = 28").replace("package:", "package:"), "window", "2..24"),
}


@pytest.fixture
def bad_profiles(isolated_user_profiles):
    folder = isolated_user_profiles
    folder.mkdir(parents=True, exist_ok=True)
    for name, (text, _, _) in OUT_OF_RANGE.items():
        assert text != TINY and text != TOON, name
        (folder / f"{name}.toml").write_text(text)
    return folder


def test_profiles_check_names_file_field_value_and_range(bad_profiles):
    for name, (_, field, allowed) in OUT_OF_RANGE.items():
        r = subprocess.run([sys.executable, "-m", "l2d_obs", "profiles", "check", str(bad_profiles / f"{name}.toml")],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
        print(r.stderr.strip().splitlines()[0])
        assert r.returncode == 2, (name, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
        first = r.stderr.strip().splitlines()[0]
        assert f"{name}.toml" in first and f"'{field}'" in first and allowed in first, first


def test_switch_to_an_out_of_range_profile_is_refused_and_the_stream_goes_on(bad_profiles, tmp_path, monkeypatch):
    monkeypatch.setenv("L2D_STATE_DIR", str(tmp_path / "state"))
    rec = RecordingSink(keep_pixels=False)
    daemon = Daemon(load_profile("tiny"), PatternSource(80, 60, fps=30), [rec], real_engine_factory,
                    DaemonConfig(control_port=0))
    thread, result = run_in_thread(daemon.run)
    try:
        assert wait_until(lambda: daemon.stats.frames_published >= 3, 120), result
        client = ControlClient()
        for name, (_, field, allowed) in OUT_OF_RANGE.items():
            with pytest.raises(ControlError) as info:
                client.switch(name)
            message = str(info.value)
            assert "refused POST /switch" in message and f"'{field}'" in message and allowed in message, message
        n = daemon.stats.frames_published
        assert wait_until(lambda: daemon.stats.frames_published > n + 5, 60)
        assert thread.is_alive() and daemon.profile.name == "tiny" and daemon.status()["switch"] == {}
    finally:
        daemon.stop()
        thread.join(10)
    assert "error" not in result, result.get("error")


def test_preload_validates_every_style_before_anything_opens(bad_profiles, tmp_path, monkeypatch):
    monkeypatch.setenv("L2D_STATE_DIR", str(tmp_path / "state"))
    rec = RecordingSink(keep_pixels=False)
    daemon = Daemon(load_profile("tiny"), PatternSource(80, 60, fps=30), [rec], real_engine_factory,
                    DaemonConfig(preload=("tiny", "width-huge")))
    with pytest.raises(Exception, match="width-huge.toml: field 'width'"):
        daemon.run()
    assert rec.records == [] and daemon.stats.frames_captured == 0
