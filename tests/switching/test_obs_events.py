"""Issue 5: OBS events switch the daemon's style (custom events, program scene, source visibility),
against a real OBS under Xvfb."""

from __future__ import annotations

import time

import pytest

from l2d_obs.config import SwitchRules
from tests.daemon.daemon_helpers import wait_until
from tests.obs_harness import add_color_source
from tests.switching.switching_helpers import frames_keep_flowing, running_daemon, switched_to, wait_switched

pytestmark = pytest.mark.obs


def test_custom_event_switches_style(obs):
    with running_daemon(obs, SwitchRules()) as (d, _), obs.conn.client() as c:
        assert d.status()["profile"] == "A"
        # Not for us / an unknown style: ignored or refused, the listener keeps going.
        c.request("BroadcastCustomEvent", {"eventData": {"other-tool": {"profile": "B"}}})
        c.request("BroadcastCustomEvent", {"eventData": {"l2d": {"profile": "no-such-style"}}})
        c.request("BroadcastCustomEvent", {"eventData": {"l2d": {"profile": "B"}}})
        wait_switched(d, "B")
        assert d.status()["switch"]["latency_ms"] > 0
        assert wait_until(lambda: d.event_switcher.handled == 1, 5)  # only the B event led to a switch
        assert frames_keep_flowing(d)


def test_custom_events_can_be_turned_off(obs):
    with running_daemon(obs, SwitchRules(custom_events=False)) as (d, _), obs.conn.client() as c:
        c.request("BroadcastCustomEvent", {"eventData": {"l2d": {"profile": "B"}}})
        time.sleep(1.0)
        assert d.status()["profile"] == "A" and d.status()["switch"] == {}


def test_program_scene_change_switches_style(obs):
    rules = SwitchRules(scenes={"sw Scene B": "B", "sw Scene C": "C"})
    with obs.conn.client() as c:
        for scene in ("sw Scene B", "sw Scene C", "sw Unmapped"):
            c.request("CreateScene", {"sceneName": scene})
        c.request("SetCurrentProgramScene", {"sceneName": "sw Unmapped"})
        with running_daemon(obs, rules) as (d, _):
            c.request("SetCurrentProgramScene", {"sceneName": "sw Scene B"})
            wait_switched(d, "B")
            c.request("SetCurrentProgramScene", {"sceneName": "sw Scene C"})
            wait_switched(d, "C")
            c.request("SetCurrentProgramScene", {"sceneName": "sw Unmapped"})  # no rule: the style stays
            time.sleep(1.0)
            assert switched_to(d, "C") and d.event_switcher.handled == 2
            assert frames_keep_flowing(d)


def test_showing_a_mapped_source_switches_style(obs):
    rules = SwitchRules(sources={"sw Overlay B": "B"})
    with obs.conn.client() as c:
        c.request("CreateScene", {"sceneName": "sw Sources"})
        add_color_source(c, "sw Sources", "sw Overlay B", (200, 30, 30), size=(80, 60))
        add_color_source(c, "sw Sources", "sw Other", (30, 200, 30), size=(80, 60))
        overlay = c.request("GetSceneItemId", {"sceneName": "sw Sources", "sourceName": "sw Overlay B"})["sceneItemId"]
        other = c.request("GetSceneItemId", {"sceneName": "sw Sources", "sourceName": "sw Other"})["sceneItemId"]
        with running_daemon(obs, rules) as (d, _):
            # Hiding it, or showing an unmapped source, switches nothing.
            c.request("SetSceneItemEnabled", {"sceneName": "sw Sources", "sceneItemId": overlay, "sceneItemEnabled": False})
            c.request("SetSceneItemEnabled", {"sceneName": "sw Sources", "sceneItemId": other, "sceneItemEnabled": False})
            c.request("SetSceneItemEnabled", {"sceneName": "sw Sources", "sceneItemId": other, "sceneItemEnabled": True})
            time.sleep(1.0)
            assert d.status()["profile"] == "A" and d.status()["switch"] == {}
            c.request("SetSceneItemEnabled", {"sceneName": "sw Sources", "sceneItemId": overlay, "sceneItemEnabled": True})
            wait_switched(d, "B")
            assert wait_until(lambda: d.event_switcher.handled == 1, 5)
            assert frames_keep_flowing(d)
