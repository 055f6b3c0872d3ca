"""Issue 11: a camera inside a group (made by a script in the real OBS: obs-websocket cannot create
groups). obs-websocket 5 cannot add items to a group either (CreateInput / CreateSceneItem: "The
specified source is not a scene. (Is group)"), so the styled camera cannot be placed there: the daemon
says so in one line, shows it in status, and changes nothing — while the same camera in a scene of
its own is replaced as usual."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from l2d_obs.sinks.obs_return import OBSReturnSink
from tests.daemon.daemon_helpers import wait_until
from tests.daemon.test_obs_mirror import (
    CAMERA_SIZE, GREY, MAGENTA, Feeder, colour_at, near, place, scene_state, screenshot, settings_for,
    twins_directly_above_cameras,
)
from tests.obs_harness import add_color_source, obs_fixture_body

pytestmark = pytest.mark.obs

SCRIPT = Path(__file__).parent / "obs_scripts" / "make_group.py"
SCENE, CAMERA, GROUP, TWIN = "group-scene", "group-cam", "Cam group", "group-twin"


@pytest.fixture(scope="module")
def obs_with_group(tmp_path_factory):
    def install(harness):
        harness.add_script(SCRIPT, {"scene": SCENE, "camera": CAMERA, "group": GROUP})

    yield from obs_fixture_body(tmp_path_factory.mktemp("obs-group"), prepare=install)


def group_state(client) -> list[tuple]:
    items = client.request("GetGroupSceneItemList", {"sceneName": GROUP})["sceneItems"]
    return [(i["sourceName"], i["sceneItemId"], i["sceneItemIndex"], i["sceneItemEnabled"],
             tuple(sorted(i["sceneItemTransform"].items()))) for i in items]


def test_a_camera_in_a_group_is_named_once_and_left_alone(obs_with_group, caplog):
    obs = obs_with_group
    with obs.conn.client() as c:
        c.request("CreateScene", {"sceneName": SCENE})
        c.request("SetCurrentProgramScene", {"sceneName": SCENE})
        add_color_source(c, SCENE, CAMERA, GREY, size=CAMERA_SIZE)
        place(c, SCENE, CAMERA, positionX=100.0, positionY=50.0, scaleX=0.75, scaleY=0.75)
        c.request("TriggerHotkeyByName", {"hotkeyName": "l2d_test.make_group"})
        assert wait_until(lambda: GROUP in c.request("GetGroupList")["groups"], 10), obs.obs_log()[-2000:]
        before_scene, before_group = scene_state(c, SCENE), group_state(c)
        c.request("CreateScene", {"sceneName": SCENE + "-plain"})
        c.request("CreateSceneItem", {"sceneName": SCENE + "-plain", "sourceName": CAMERA})
        before_plain = scene_state(c, SCENE + "-plain")
    sink = OBSReturnSink(settings_for(obs), camera=CAMERA, input_name=TWIN, check_interval=0.5)
    with caplog.at_level(logging.WARNING):
        sink.open(*CAMERA_SIZE, 30)
        try:
            with Feeder(sink), obs.conn.client() as c:
                assert twins_directly_above_cameras(c, SCENE + "-plain", CAMERA, TWIN)
                assert [i[0] for i in group_state(c)] == [CAMERA]  # nothing added to the group
                status = sink.status()
                assert status["scenes"] == [SCENE + "-plain"] and status["not_shown_in"] == [GROUP]
                assert wait_until(lambda: near(colour_at(screenshot(c, SCENE + "-plain"), 40, 100), MAGENTA), 10)
                assert near(colour_at(screenshot(c, SCENE), 150, 120), GREY)  # the group shows the raw camera
        finally:
            sink.close()
    said = [r.getMessage() for r in caplog.records if GROUP in r.getMessage()]
    assert len(said) == 1 and "use a nested scene instead of a group" in said[0], said
    with obs.conn.client() as c:
        assert scene_state(c, SCENE) == before_scene and group_state(c) == before_group
        assert scene_state(c, SCENE + "-plain") == before_plain
