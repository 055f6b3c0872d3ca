"""Issue 5: the OBS hotkey script, loaded by a real OBS from its scene collection, switches the daemon's
style; a key binding saved with the script's settings survives an OBS restart."""

from __future__ import annotations

import time

import pytest

from tests.daemon.daemon_helpers import wait_until
from tests.switching.switching_helpers import F7_BINDING, PLUGIN, STYLES, running_daemon, switched_to, wait_switched

pytestmark = pytest.mark.obs

HOTKEYS = [f"l2d_obs.style.{name}" for name in STYLES] + ["l2d_obs.next", "l2d_obs.previous"]


def press(obs, client, hotkey: str, d, expected: str) -> None:
    """Fire a hotkey by name; the daemon must switch to ``expected`` and the script must have logged its
    success (it remembers the current style only then, which next/previous start from)."""
    said = f"[l2d-obs] switching to {expected}"
    before = obs.obs_log().count(said)
    client.request("TriggerHotkeyByName", {"hotkeyName": hotkey})
    wait_switched(d, expected)
    assert wait_until(lambda: obs.obs_log().count(said) > before, 10, interval=0.1), f"script log lacks {said!r}"


def plugin_settings(obs) -> dict:
    entries = obs.read_scene_collection().get("modules", {}).get("scripts-tool", [])
    matching = [e for e in entries if e.get("path") == str(PLUGIN)]
    assert len(matching) == 1, entries
    return matching[0]["settings"]


def test_script_hotkeys_switch_the_daemon(obs):
    assert "Loaded python script: l2d_obs_hotkeys.py" in obs.obs_log()
    with obs.conn.client() as c:
        listed = c.request("GetHotkeyList")["hotkeys"]
        assert set(HOTKEYS) <= set(listed), [h for h in listed if h.startswith("l2d")]
        with running_daemon() as (d, _):  # no OBS event listener: only the script talks to the daemon
            press(obs, c, "l2d_obs.style.B", d, "B")
            press(obs, c, "l2d_obs.next", d, "C")  # B -> C
            press(obs, c, "l2d_obs.next", d, "A")  # C -> A (wraps around)
            press(obs, c, "l2d_obs.previous", d, "C")  # A -> C


def test_hotkey_binding_survives_obs_restart(obs):
    obs.stop()  # clean exit: OBS saves the scene collection, the script its hotkey bindings
    saved = plugin_settings(obs)
    assert saved["l2d_obs.style.B"] == F7_BINDING
    assert saved["profiles"] == ",".join(STYLES)
    assert all(isinstance(saved.get(name), list) for name in HOTKEYS), saved  # every hotkey is saved
    obs.start()
    with obs.conn.client() as c:
        assert set(HOTKEYS) <= set(c.request("GetHotkeyList")["hotkeys"])
        with running_daemon() as (d, _):
            c.request("TriggerHotkeyByKeySequence", {"keyId": "OBS_KEY_F8"})  # bound to nothing
            time.sleep(1.0)
            assert d.status()["profile"] == "A" and d.status()["switch"] == {}
            c.request("TriggerHotkeyByKeySequence", {"keyId": "OBS_KEY_F7"})  # the restored binding
            wait_switched(d, "B")
            assert switched_to(d, "B")
