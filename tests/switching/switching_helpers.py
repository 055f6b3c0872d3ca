"""Shared helpers for the style-switching tests (daemons, profiles, OBS script settings)."""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

from l2d_obs.config import OBSSettings, Secret, SwitchRules
from l2d_obs.daemon import Daemon, DaemonConfig
from l2d_obs.sources.pattern import PatternSource
from tests.daemon.daemon_helpers import REPO, RecordingSink, real_engine_factory, run_in_thread, wait_until
from tests.obs_harness import OBSHarness

PLUGIN = REPO / "plugin" / "l2d_obs_hotkeys.py"
TINY = (REPO / "profiles" / "tiny.toml").read_text()
STYLES = ("A", "B", "C")
F7_BINDING = [{"key": "OBS_KEY_F7"}]  # the format OBS itself writes for a hotkey bound to F7


def tiny_variant(name: str, seed: int) -> str:
    """tiny.toml with its own prompt and seed: same model, a different style (the name is the file's)."""
    text = TINY.replace('prompt = "a tiny random style"', f'prompt = "tiny test style {name}"')
    text = text.replace("seed = 42", f"seed = {seed}")
    assert text.count("test style") == 1 and f"seed = {seed}" in text
    return text


MISSING_WEIGHTS = """display_name = "Missing weights (test)"
prompt = "a style whose files are not there"
t_index_list = [30, 40]
num_inference_steps = 50
width = 64
height = 64

[model]
kind = "sd15"
base = "/nonexistent/l2d-test/base.safetensors"
motion = "/nonexistent/l2d-test/motion.ckpt"
lcm_lora = "/nonexistent/l2d-test/lcm.safetensors"
vae = "/nonexistent/l2d-test/vae"

[depth]
enabled = false
"""

BROKEN = 'display_name = "Broken (test)"\nprompt = "x"\nno_such_key = 1\n'


def settings_for(obs: OBSHarness) -> OBSSettings:
    c = obs.conn
    return OBSSettings(c.host, c.port, Secret(c.password))


@contextlib.contextmanager
def running_daemon(obs: OBSHarness | None = None, rules: SwitchRules | None = None, profile: str = "A",
                   preload: tuple[str, ...] = ()) -> Iterator[tuple[Daemon, RecordingSink]]:
    """A daemon styling an 80x60 pattern with the real tiny engine into a RecordingSink, with its control
    API on a free port, listening to ``obs`` for switch events when given. Streaming when yielded;
    always stopped afterwards, and its run() must have ended without an error."""
    from l2d_obs.profiles import load_profile

    rec = RecordingSink(keep_pixels=False)
    events = (settings_for(obs), rules or SwitchRules()) if obs is not None else None
    d = Daemon(load_profile(profile), PatternSource(80, 60, fps=30), [rec], real_engine_factory,
               DaemonConfig(control_port=0, preload=preload, obs_events=events, status_interval=0.25))
    thread, result = run_in_thread(d.run)
    try:
        assert wait_until(lambda: d.stats.frames_published >= 3 or not thread.is_alive(), 90), "daemon never published"
        assert thread.is_alive(), f"daemon ended early: {result}"
        if obs is not None:
            assert wait_until(lambda: d.event_switcher is not None and d.event_switcher.connected.is_set(), 15), \
                "the OBS event listener never connected"
        yield d, rec
    finally:
        d.stop()
        thread.join(10)
    assert not thread.is_alive(), "daemon did not stop"
    assert "error" not in result, result.get("error")
    assert not [t for t in threading.enumerate() if t.name.startswith("l2d-") and t.is_alive()]


def switched_to(d: Daemon, name: str) -> bool:
    st = d.status()
    return st["profile"] == name and st["switch"].get("profile") == name and st["switch"].get("state") == "active"


def wait_switched(d: Daemon, name: str, timeout: float = 60) -> None:
    assert wait_until(lambda: switched_to(d, name), timeout), f"no switch to {name}: {d.status()['switch']}, " \
        f"profile {d.status()['profile']}"


def frames_keep_flowing(d: Daemon, extra: int = 3, timeout: float = 30) -> bool:
    n = d.stats.frames_published
    return wait_until(lambda: d.stats.frames_published >= n + extra, timeout)
