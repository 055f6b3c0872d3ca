"""The hotkey script's own logic, outside OBS (a stand-in ``obspython``): a switch asked while the
daemon is still loading says so, with the step and progress from the daemon's status."""

from __future__ import annotations

import importlib.util
import sys
import types

from l2d_obs.control.server import ControlServer
from tests.switching.switching_helpers import PLUGIN


class LoadingDaemon:
    def __init__(self, phase: str) -> None:
        self.phase, self.switched = phase, []

    def status(self) -> dict:
        loading = {"step": "loading the VAE", "progress": 0.75} if self.phase == "loading" else None
        return {"profile": "toon", "phase": self.phase, "loading": loading}

    def request_switch(self, name: str) -> dict:
        self.switched.append(name)
        return {"switching_to": name}

    def stop(self) -> None:
        pass


def load_plugin(monkeypatch):
    fake = types.ModuleType("obspython")
    fake.LOG_INFO, fake.LOG_WARNING = 300, 200
    fake.script_log = lambda level, message: None
    monkeypatch.setitem(sys.modules, "obspython", fake)
    spec = importlib.util.spec_from_file_location("l2d_obs_hotkeys_under_test", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_switch_during_loading_says_it_waits_for_the_daemon(tmp_path, monkeypatch):
    plugin = load_plugin(monkeypatch)
    for phase, expected in (("loading", "switching to B once the daemon is ready (it is loading toon (loading the VAE 75%))"),
                            ("warming", "switching to B once the daemon is ready (it is warming up)"),
                            ("running", "switching to B")):
        daemon = LoadingDaemon(phase)
        server = ControlServer(daemon, port=0, path=tmp_path / f"{phase}.json")
        server.start()
        try:
            plugin._state["control_file"] = str(server.path)
            assert plugin.request_switch("B") == expected
            assert daemon.switched == ["B"]
        finally:
            server.close()


class RefusingDaemon(LoadingDaemon):
    """Running; refuses styles whose weights are missing, like the real daemon does."""

    def __init__(self, refused: set[str]) -> None:
        super().__init__("running")
        self.refused, self.profile = refused, "A"

    def status(self) -> dict:
        return {"profile": self.profile, "phase": "running", "loading": None}

    def request_switch(self, name: str) -> dict:
        from l2d_obs.errors import MissingWeightsError

        if name in self.refused:
            raise MissingWeightsError(f"{name} needs weights: run l2d-obs models download --profile {name}")
        self.profile = name
        return super().request_switch(name)


def test_next_style_skips_refused_styles_and_says_why_once(tmp_path, monkeypatch):
    plugin = load_plugin(monkeypatch)
    logged = []
    plugin.obs.script_log = lambda level, message: logged.append(message)
    daemon = RefusingDaemon({"missing", "absent"})
    server = ControlServer(daemon, port=0, path=tmp_path / "control.json")
    server.start()
    try:
        plugin._state["control_file"] = str(server.path)
        styles = ["A", "missing", "absent", "B"]
        assert plugin.step_now(styles, +1) == "switching to B (skipped missing, absent)"
        assert daemon.profile == "B"
        assert plugin.step_now(styles, -1) == "switching to A (skipped absent, missing)"
        assert plugin.step_now(styles, +1) == "switching to B (skipped missing, absent)"
        reasons = [m for m in logged if "refused" in m]
        assert len(reasons) == 2 and any("models download --profile missing" in m for m in reasons), logged
        daemon.refused |= {"A", "B"}
        assert plugin.step_now(styles, +1).startswith("no other style is usable now")
    finally:
        server.close()
