"""Hot swap in a running daemon: no blank frame, no stall beyond the switch, bounded memory, bad
requests refused while the old style keeps streaming."""

from pathlib import Path

import numpy as np
import psutil
import pytest

from l2d_obs.daemon import Daemon, DaemonConfig
from l2d_obs.errors import MissingWeightsError, ProfileError
from l2d_obs.profiles import SHIPPED_PROFILES_DIR, load_profile
from l2d_obs.sources.pattern import PatternSource
from tests.daemon.daemon_helpers import RecordingSink, real_engine_factory, run_in_thread, wait_until

TINY = (SHIPPED_PROFILES_DIR / "tiny.toml").read_text()


def _write_profile(folder: Path, name: str, *, seed: int, weights_seed: int, prompt: str) -> None:
    text = TINY.replace('prompt = "a tiny random style"', f'prompt = "{prompt}"')
    text = text.replace("seed = 42", f"seed = {seed}").replace("weights_seed = 0", f"weights_seed = {weights_seed}")
    (folder / f"{name}.toml").write_text(text)


@pytest.fixture
def styles(tmp_path, monkeypatch):
    """User profiles: two more tiny styles (one sharing the tiny model, one with its own), a broken
    one and one whose weights are missing."""
    folder = tmp_path / "profiles"
    folder.mkdir()
    _write_profile(folder, "ink", seed=3, weights_seed=0, prompt="ink on paper")  # same model as tiny
    _write_profile(folder, "neon", seed=5, weights_seed=7, prompt="neon glow")  # another model
    # The tiny model at another resolution and aspect (16:9-ish, and taller than wide).
    (folder / "wide.toml").write_text(TINY.replace("width = 64", "width = 112").replace("height = 64", "height = 64"))
    (folder / "tall.toml").write_text(TINY.replace("width = 64", "width = 48").replace("height = 64", "height = 80"))
    (folder / "broken.toml").write_text("brightness = 3\n" + TINY)
    (folder / "absent.toml").write_text(TINY.replace('kind = "tiny"', 'kind = "sd15"\nbase = "missing-model.safetensors"'))
    monkeypatch.setenv("L2D_PROFILES_DIR", str(folder))
    monkeypatch.setenv("L2D_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("L2D_MODELS_DIR", str(tmp_path / "models"))
    return folder


def _start(preload=(), keep_source_aspect=True):
    rec = RecordingSink()
    daemon = Daemon(load_profile("tiny"), PatternSource(80, 60, 30), [rec], real_engine_factory,
                    DaemonConfig(preload=tuple(preload), keep_source_aspect=keep_source_aspect))
    thread, result = run_in_thread(daemon.run)
    assert wait_until(lambda: daemon.stats.frames_published >= 3, 120), result
    return daemon, rec, thread, result


def _stop(daemon, thread, result):
    daemon.stop()
    thread.join(10)
    assert "error" not in result, result.get("error")


def test_switch_never_blanks_and_never_stalls_longer_than_the_switch(styles):
    daemon, rec, thread, result = _start()
    try:
        start_at = rec.records[-1][0]
        daemon.request_switch("neon")  # a different model: the slowest kind of switch
        assert wait_until(lambda: daemon.status()["switch"].get("state") == "active", 120)
        switch_ms = daemon.status()["switch"]["latency_ms"]
        n = len(rec.records)
        assert wait_until(lambda: len(rec.records) > n + 10, 60)
    finally:
        _stop(daemon, thread, result)
    window = [(t, f) for t, f in rec.records if t >= start_at]
    times = np.array([t for t, _ in window])
    gaps_ms = np.diff(times) * 1000
    # The output keeps its pace through the switch (the last frame is repeated while the new style
    # prepares), so no gap comes near the switch time, let alone beyond it.
    assert gaps_ms.max() < max(switch_ms, 200), (gaps_ms.max(), switch_ms)
    for _, frame in window:
        assert frame.pixels.shape == (60, 80, 3)
        assert frame.pixels.std() > 1.0, "a blank frame was published"
    assert daemon.profile.name == "neon"


def test_bad_switches_are_refused_and_the_old_style_keeps_streaming(styles):
    daemon, rec, thread, result = _start()
    try:
        with pytest.raises(ProfileError, match="unknown profile 'nope'"):
            daemon.request_switch("nope")
        with pytest.raises(ProfileError, match=r"broken.toml: field 'brightness': unknown key"):
            daemon.request_switch("broken")
        with pytest.raises(MissingWeightsError, match="missing-model.safetensors"):
            daemon.request_switch("absent")
        n = daemon.stats.frames_published
        assert wait_until(lambda: daemon.stats.frames_published > n + 5, 60)
        assert daemon.profile.name == "tiny" and daemon.status()["switch"] == {}
    finally:
        _stop(daemon, thread, result)


def test_twenty_rapid_switches_end_on_the_last_request_with_bounded_memory(styles):
    daemon, rec, thread, result = _start(preload=["ink"])
    process = psutil.Process()
    try:
        daemon.request_switch("neon")
        assert wait_until(lambda: daemon.status()["switch"].get("state") == "active", 120)
        rss_before = process.memory_info().rss
        sequence = ["ink", "neon", "tiny"] * 6 + ["ink", "neon"]
        for name in sequence:
            daemon.request_switch(name)
        assert wait_until(lambda: daemon.status()["switch"] == {**daemon.status()["switch"], "profile": "neon", "state": "active"}, 120)
        assert daemon.profile.name == "neon"
        n = daemon.stats.frames_published
        assert wait_until(lambda: daemon.stats.frames_published > n + 5, 60)
        held = daemon.status()["styles"]
        # tiny and ink share one model; neon has its own: never more than those two model sets, and
        # besides the active style only the preloaded one is kept.
        assert held["models"] <= 2 and held["styles"] <= 2 and held["preloaded"] == ["ink"]
        growth = process.memory_info().rss - rss_before
        assert growth < 150 * 2**20, f"RSS grew {growth / 2**20:.0f} MiB over 20 switches"
    finally:
        _stop(daemon, thread, result)


def _engine_sizes_over(daemon, seconds: float) -> set[tuple[int, int]]:
    import time

    seen, end = set(), time.monotonic() + seconds
    while time.monotonic() < end:
        seen.add((daemon._engine.width, daemon._engine.height))
        time.sleep(0.02)
    return seen


@pytest.mark.parametrize("order", [("wide", "tall", "tiny"), ("tall", "wide", "tiny")])
def test_switching_between_resolutions_and_aspects_keeps_streaming(styles, order):
    """Each switch to a style at another size re-warms from the camera frames fitted to the new size:
    the daemon keeps running, the engine runs at the new size, the output keeps its size and pace."""
    daemon, rec, thread, result = _start(keep_source_aspect=False)  # the profiles' own shapes, not the camera's
    sizes = {"tiny": (64, 64), "wide": (112, 64), "tall": (48, 80)}
    try:
        for name in order:
            start_at = rec.records[-1][0]
            daemon.request_switch(name)
            assert wait_until(lambda: daemon.status()["switch"].get("state") in ("active", "failed") or not thread.is_alive(), 120)
            assert thread.is_alive(), result
            st = daemon.status()
            assert st["switch"]["state"] == "active", st["switch"]
            assert (daemon._engine.width, daemon._engine.height) == sizes[name]
            n = len(rec.records)
            assert wait_until(lambda: len(rec.records) > n + 8, 60), "no frames after the switch"
            window = [(t, f) for t, f in rec.records if t >= start_at]
            gaps_ms = np.diff([t for t, _ in window]) * 1000
            assert gaps_ms.max() < max(st["switch"]["latency_ms"], 200), (name, gaps_ms.max())
            assert all(f.pixels.shape == (60, 80, 3) and f.pixels.std() > 1.0 for _, f in window)
            # The style library always holds the style on screen.
            assert daemon.status()["styles"]["styles"] >= 1 and daemon.status()["styles"]["active"] == name
        assert _engine_sizes_over(daemon, 0.3) == {sizes[order[-1]]}
    finally:
        _stop(daemon, thread, result)


def test_a_styles_engine_table_is_honoured_on_a_switch(styles):
    """[engine] dtype/device in the profile switched to decides where and how the new style runs."""
    import torch

    (styles / "half.toml").write_text(TINY + '\n[engine]\ndtype = "bf16"\n')
    daemon, rec, thread, result = _start()
    try:
        assert daemon._engine.dtype == torch.float32
        daemon.request_switch("half")
        assert wait_until(lambda: daemon.status()["switch"].get("state") in ("active", "failed"), 120)
        assert daemon.status()["switch"]["state"] == "active", daemon.status()["switch"]
        assert daemon._engine.dtype == torch.bfloat16
        assert next(daemon._engine.components.unet.parameters()).dtype == torch.bfloat16
        n = len(rec.records)
        assert wait_until(lambda: len(rec.records) > n + 5, 60)
        daemon.request_switch("tiny")  # and back: the active style's own table (none: fp32 on a CPU)
        assert wait_until(lambda: daemon.status()["switch"] == {**daemon.status()["switch"], "profile": "tiny", "state": "active"}, 120)
        assert daemon._engine.dtype == torch.float32
    finally:
        _stop(daemon, thread, result)
