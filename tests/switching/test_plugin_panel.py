"""Issue 11 part 2: the plugin script's panel. A real headless OBS loads the script; its Start, Stop and
Bypass (fired as hotkeys, which call the buttons' callbacks) start a real `l2d-obs start` child, bypass
it and stop it; the status the script logs goes loading -> running -> stopped; the style list is the
daemon's GET /profiles. Fast tests of the same functions outside OBS (a stand-in obspython) cover the
command line (no secret on it), the status texts and a failed start's reason."""

from __future__ import annotations

import os
import re
import signal
import stat
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from l2d_obs.control.client import ControlClient, _pid_alive, read_control_file
from l2d_obs.errors import ControlError
from tests.daemon.daemon_helpers import wait_until
from tests.obs_harness import OBSHarness, add_color_source, free_port, obs_fixture_body
from tests.switching.switching_helpers import MISSING_WEIGHTS, PLUGIN, tiny_variant
from tests.switching.test_plugin_phase import load_plugin

L2D_OBS = Path(sys.executable).with_name("l2d-obs")  # this venv's console script (not a pyenv shim)
CAMERA = "L2D Panel Camera"
CAMERA_RGB = (200, 40, 90)


# --- outside OBS ---------------------------------------------------------------------------------


def test_launch_command_keeps_the_password_off_the_command_line(tmp_path, monkeypatch):
    plugin = load_plugin(monkeypatch)
    plugin._state["control_file"] = str(tmp_path / "state" / "control.json")
    argv, env = plugin.launch_command({"command": "/opt/l2d/bin/l2d-obs", "profile": "toon", "source": "obs:Webcam",
                                       "output": "obs, mjpeg:8090", "extra": "--preload 'van gogh'",
                                       "obs_port": 4460, "obs_password": "s3cret pw"})
    assert argv == ["/opt/l2d/bin/l2d-obs", "start", "--profile", "toon", "--source", "obs:Webcam",
                    "--output", "obs", "--output", "mjpeg:8090", "--preload", "van gogh"]
    assert not any("s3cret" in a for a in argv)
    assert env == {"L2D_STATE_DIR": str(tmp_path / "state"), "L2D_OBS_PORT": "4460", "L2D_OBS_PASSWORD": "s3cret pw"}
    _, env = plugin.launch_command({"command": "l2d-obs"})  # nothing typed: the daemon's config file decides
    assert set(env) == {"L2D_STATE_DIR"}
    monkeypatch.setenv("PATH", str(tmp_path))  # no l2d-obs anywhere
    with pytest.raises(ValueError, match="not found on OBS's PATH; set 'l2d-obs command'"):
        plugin.launch_command({"command": ""})
    with pytest.raises(ValueError, match="not a valid command line"):
        plugin.launch_command({"command": "l2d-obs", "extra": "--preload 'unclosed"})


def test_status_texts(monkeypatch):
    plugin = load_plugin(monkeypatch)
    describe = plugin.describe
    assert describe(None, None, "") == ("stopped", "stopped")
    assert describe(None, None, "vangogh needs weights") == ("stopped", "stopped\nvangogh needs weights")
    loading = {"phase": "loading", "profile": "toon", "loading": {"step": "loading the UNet", "progress": 0.4}}
    assert describe(loading, None, "") == ("loading", "loading: loading the UNet 40%")
    running = {"phase": "running", "profile": "toon", "fps_out": 11.84, "latency_ms": 180.2, "frames_published": 9,
               "source_state": "live", "bypass": False}
    assert describe(running, None, "") == ("running toon", "running · toon · 11.8 fps · 180 ms")
    state, text = describe(dict(running, bypass=True), None, "")
    assert state == "running toon bypass" and text.endswith("· bypass (raw camera)")
    failed = dict(running, switch={"profile": "zaum", "state": "failed", "error": "zaum needs weights"})
    assert describe(failed, None, "")[1].endswith("\nswitching to zaum failed: zaum needs weights")


def test_a_failed_start_shows_the_daemons_own_reason(tmp_path, monkeypatch):
    """The child's one-line error ends up in the status, from the log file the panel gave it."""
    plugin = load_plugin(monkeypatch)
    fake = tmp_path / "fake-l2d-obs"
    fake.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import sys
        print("loading ...")
        print("l2d-obs: error: vangogh needs weights: run l2d-obs models download --profile vangogh", file=sys.stderr)
        sys.exit(1)
    """))
    fake.chmod(0o755)
    plugin._state["control_file"] = str(tmp_path / "state" / "control.json")
    plugin._state["launch"] = {"command": str(fake), "profile": "vangogh"}
    said = plugin.start_daemon()
    assert said.startswith(f"started {fake} start --profile vangogh (pid ") and "obs-panel-daemon.log" in said
    assert plugin.describe(None, plugin._state["child"], "")[0] == "starting"
    assert wait_until(lambda: (plugin._reap_child(), plugin._state["child"] is None)[1], 10)
    assert plugin.describe(None, None, plugin._state["last_error"]) == (
        "stopped", "stopped\nvangogh needs weights: run l2d-obs models download --profile vangogh")
    log = tmp_path / "state" / "obs-panel-daemon.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    plugin._state["launch"] = {"command": str(tmp_path / "nothing-here")}
    assert plugin.start_daemon().startswith(f"cannot start: cannot run {tmp_path / 'nothing-here'}")


def test_drawing_the_panel_never_acts_only_a_users_pick_does(monkeypatch):
    """OBS calls the modified callbacks whenever it draws the panel: that must not switch or bypass;
    a pick that differs from what the daemon does must, once."""
    plugin = load_plugin(monkeypatch)
    fake = plugin.obs
    fake.obs_data_set_string = lambda d, k, v: d.__setitem__(k, v)
    fake.obs_data_set_bool = lambda d, k, v: d.__setitem__(k, v)
    fake.obs_data_get_string = lambda d, k: d.get(k, "")
    fake.obs_data_get_bool = lambda d, k: d.get(k, False)
    items: list[tuple[str, str]] = []
    fake.obs_properties_get = lambda props, name: items if name == "style" else None
    fake.obs_property_list_clear = lambda prop: prop.clear()
    fake.obs_property_list_add_string = lambda prop, label, value: prop.append((label, value))
    switched, bypassed = [], []
    monkeypatch.setattr(plugin, "switch_async", switched.append)
    monkeypatch.setattr(plugin, "_in_background", lambda work, name: bypassed.append(name))
    settings: dict = {}
    plugin._state.update(settings=settings, daemon={"profile": "tiny", "bypass": False}, styles=["B", "tiny"],
                         styles_active="tiny", status_text="running · tiny · 10.0 fps · 900 ms")
    assert plugin.on_refresh(object()) is True
    assert items == [("B", "B"), ("\u25cf tiny (active)", "tiny")]
    assert settings == {"status": "running · tiny · 10.0 fps · 900 ms", "bypass": False, "style": "tiny"}
    plugin._on_style_property(None, None, settings)
    plugin._on_bypass_property(None, None, settings)
    assert switched == [] and bypassed == []  # a redraw
    settings["style"] = "B"
    plugin._on_style_property(None, None, settings)
    plugin._on_style_property(None, None, settings)  # OBS calls it again when it redraws
    assert switched == ["B"]
    settings["bypass"] = True
    plugin._on_bypass_property(None, None, settings)
    assert bypassed == ["l2d-obs-bypass"]
    plugin._state["daemon"] = None  # nothing runs: nothing to act on
    settings["style"] = "tiny"
    plugin._on_style_property(None, None, settings)
    assert switched == ["B"]
    assert plugin.on_start(None) is False  # a hotkey: no panel, settings untouched
    assert settings["status"] == "running · tiny · 10.0 fps · 900 ms"


# --- in a real OBS -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    """An OBS of its own whose script panel is set up as a user would: l2d-obs command, style tiny,
    the camera from OBS (a colour source), an MJPEG output the test can read, OBS port and password."""
    root = tmp_path_factory.mktemp("panel")
    state = root / "state"
    mjpeg_port = free_port()

    def install(harness: OBSHarness) -> None:
        # User profiles where both the script and the daemon it starts look (OBS's HOME): a style whose
        # weights are missing, between tiny and B in the hotkeys' order.
        profiles = harness.home / ".config" / "l2d-obs" / "profiles"
        profiles.mkdir(parents=True)
        (profiles / "missing.toml").write_text(MISSING_WEIGHTS)
        (profiles / "B.toml").write_text(tiny_variant("B", 101))
        harness.add_script(PLUGIN, {
            "profiles": "tiny,missing,B", "control_file": str(state / "control.json"), "command": str(L2D_OBS),
            "start_profile": "tiny", "source": f"obs:{CAMERA}", "output": f"mjpeg:{mjpeg_port}",
            "extra_args": "--fps 10 --threads 1", "obs_port": harness.conn.port, "obs_password": harness.conn.password,
        })

    for harness in obs_fixture_body(root / "obs", prepare=install):
        with harness.conn.client() as c:  # the collection holds only the script: no scene yet
            c.request("CreateScene", {"sceneName": "Panel"})
            c.request("SetCurrentProgramScene", {"sceneName": "Panel"})
            add_color_source(c, "Panel", CAMERA, CAMERA_RGB, size=(160, 96))
        try:
            yield harness, state, mjpeg_port
        finally:  # a failed test must not leave its daemon running
            try:
                pid = read_control_file(state / "control.json").pid
            except ControlError:
                pid = None
            if pid is not None and _pid_alive(pid):
                os.kill(pid, signal.SIGTERM)


def status_lines(obs: OBSHarness) -> list[str]:
    return re.findall(r"\[l2d-obs\] status: (.*)", obs.obs_log())


def wait_status(obs: OBSHarness, prefix: str, after: int, timeout: float) -> int:
    """Index of the first status line from ``after`` on that starts with ``prefix``."""
    def found():
        return next((i for i, line in enumerate(status_lines(obs)) if i >= after and line.startswith(prefix)), None)

    assert wait_until(lambda: found() is not None, timeout, interval=0.1), \
        f"no status {prefix!r} after line {after}: {status_lines(obs)}"
    return found()


def frame(port: int) -> np.ndarray:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/frame.jpg", timeout=5) as resp:
        bgr = cv2.imdecode(np.frombuffer(resp.read(), np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def distance_to_camera(port: int) -> float:
    """Mean absolute difference between the output and the camera's colour (0..255)."""
    return float(np.abs(frame(port).astype(np.float32) - np.array(CAMERA_RGB, np.float32)).mean())


@pytest.mark.obs
def test_panel_starts_bypasses_and_stops_a_daemon(panel):
    obs, state, port = panel
    first = wait_status(obs, "stopped", 0, 15)  # the first poll: nothing runs
    with obs.conn.client() as c:
        hotkeys = c.request("GetHotkeyList")["hotkeys"]
        assert {"l2d_obs.start", "l2d_obs.stop", "l2d_obs.bypass"} <= set(hotkeys)

        c.request("TriggerHotkeyByName", {"hotkeyName": "l2d_obs.start"})
        loading = wait_status(obs, "loading: ", first, 60)
        running = wait_status(obs, "running · tiny · ", loading, 180)
        assert loading < running
        info = read_control_file(state / "control.json")
        cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:3] == [b"start", b"--profile"] or b"start" in cmdline, cmdline
        assert obs.conn.password.encode() not in b" ".join(cmdline), "the OBS password is on the command line"
        log = state / "obs-panel-daemon.log"
        assert stat.S_IMODE(log.stat().st_mode) == 0o600 and obs.conn.password not in log.read_text()

        # The style list is the daemon's, the active style marked.
        listed = ControlClient(info).profiles()
        expected = ", ".join(n + (" (active)" if n == listed["active"] else "") for n in listed["profiles"])
        assert wait_until(lambda: f"[l2d-obs] styles: {expected}" in obs.obs_log(), 15), \
            (expected, re.findall(r"\[l2d-obs\] styles: .*", obs.obs_log()))
        assert listed["active"] == "tiny"

        # Styled, then the raw camera with bypass, then styled again.
        assert wait_until(lambda: distance_to_camera(port) > 25, 30), distance_to_camera(port)
        c.request("TriggerHotkeyByName", {"hotkeyName": "l2d_obs.bypass"})
        assert wait_until(lambda: ControlClient(info).status()["bypass"], 10)
        assert wait_until(lambda: distance_to_camera(port) < 4, 10), distance_to_camera(port)
        assert frame(port).shape == (96, 160, 3)  # the output size did not change
        wait_status(obs, "running · tiny · ", running + 1, 10)
        assert any("bypass (raw camera)" in line for line in status_lines(obs)[running + 1:])
        c.request("TriggerHotkeyByName", {"hotkeyName": "l2d_obs.bypass"})
        assert wait_until(lambda: not ControlClient(info).status()["bypass"], 10)
        assert wait_until(lambda: distance_to_camera(port) > 25, 30), distance_to_camera(port)

        # "next style" moves past the style the daemon refuses (weights missing) and says why once.
        c.request("TriggerHotkeyByName", {"hotkeyName": "l2d_obs.next"})
        assert wait_until(lambda: ControlClient(info).status()["switch"] == {**ControlClient(info).status()["switch"],
                                                                            "profile": "B", "state": "active"}, 60), \
            ControlClient(info).status()["switch"]
        log = obs.obs_log()
        assert "[l2d-obs] switching to B (skipped missing)" in log
        assert log.count("[l2d-obs] daemon refused missing: ") == 1
        wait_status(obs, "running · B · ", running + 1, 10)

        # Stop: the daemon is gone within 2 s of the press.
        before = len(status_lines(obs))
        pressed = time.monotonic()
        c.request("TriggerHotkeyByName", {"hotkeyName": "l2d_obs.stop"})
        assert wait_until(lambda: not _pid_alive(info.pid), 5, interval=0.02)
        took = time.monotonic() - pressed
        print(f"stop took {took:.2f} s from the hotkey press to the process exit")
        assert took < 2.0, f"stop took {took:.2f} s"
        wait_status(obs, "stopped", before, 5)
        print("\n".join(re.findall(r"\[l2d-obs\] .*", obs.obs_log())))
        assert re.search(r"\[l2d-obs\] stopped the daemon \(pid \d+\) in \d\.\d\d s", obs.obs_log())
