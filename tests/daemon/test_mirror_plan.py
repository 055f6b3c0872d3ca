"""The mirroring plan, without OBS: which twins to create, follow or remove, and where."""

from __future__ import annotations

from l2d_obs.sinks.obs_mirror import Container, SceneItem, plan_container, shows, twin_transform

CAM, TWIN = "Webcam", "l2d-obs output"
T = {"positionX": 10.0, "positionY": 20.0, "rotation": 0.0, "scaleX": 0.5, "scaleY": 0.5, "alignment": 5,
     "boundsType": "OBS_BOUNDS_NONE", "boundsAlignment": 0, "boundsWidth": 0.0, "boundsHeight": 0.0,
     "cropLeft": 40, "cropRight": 0, "cropTop": 8, "cropBottom": 0, "sourceWidth": 1280.0, "sourceHeight": 720.0}


def item(item_id, index, source, transform=None, enabled=True, locked=False):
    return SceneItem(item_id, index, source, enabled, dict(transform or T), locked=locked)


def test_a_camera_without_twin_gets_one():
    plan = plan_container(Container("S", False, (item(1, 0, "bg"), item(2, 1, CAM), item(3, 2, "alert"))), CAM, TWIN, 1280)
    assert [c.item_id for c in plan.create_above] == [2] and plan.remove == [] and plan.updates == []


def test_a_twin_in_place_and_in_step_needs_nothing():
    twin = item(9, 2, TWIN, twin_transform(T, 1280), locked=True)
    plan = plan_container(Container("S", False, (item(1, 0, "bg"), item(2, 1, CAM), twin)), CAM, TWIN, 1280)
    assert plan.empty


def test_a_twin_follows_a_moved_or_hidden_camera():
    twin = item(9, 1, TWIN, twin_transform(T, 1280), locked=True)
    moved = item(2, 0, CAM, {**T, "positionX": 300.0})
    assert [t for t, _ in plan_container(Container("S", False, (moved, twin)), CAM, TWIN, 1280).updates] == [9]
    hidden = item(2, 0, CAM, enabled=False)
    assert [t for t, _ in plan_container(Container("S", False, (hidden, twin)), CAM, TWIN, 1280).updates] == [9]


def test_twins_on_nothing_go_and_each_camera_has_its_own():
    # a twin left at the top (the camera moved down), a second camera item without twin
    listed = (item(1, 0, CAM), item(5, 1, "alert"), item(2, 2, CAM), item(9, 3, TWIN, {**T, "positionX": 0.0}, locked=True),
              item(8, 4, TWIN))
    plan = plan_container(Container("S", False, listed), CAM, TWIN, 1280)
    assert plan.remove == [8]
    assert [c.item_id for c in plan.create_above] == [1]
    assert [t for t, _ in plan.updates] == [9]  # 9 sits on camera 2 but has another transform


def test_twin_transform_scales_for_a_smaller_output():
    # output frames half the camera's width: twice the scale, half the crop: the same place on the canvas
    out = twin_transform(T, 640)
    assert out["scaleX"] == 1.0 and out["scaleY"] == 1.0
    assert out["cropLeft"] == 20 and out["cropTop"] == 4
    assert "boundsWidth" not in out  # no bounds type: obs-websocket would refuse a width below 1
    bounded = twin_transform({**T, "boundsType": "OBS_BOUNDS_SCALE_INNER", "boundsWidth": 400.0, "boundsHeight": 300.0}, 1280)
    assert bounded["boundsWidth"] == 400.0 and bounded["boundsType"] == "OBS_BOUNDS_SCALE_INNER"


def test_nesting_is_followed_at_any_depth():
    scenes = [Container("Main", False, (item(1, 0, "Cam scene"),)), Container("Cam scene", False, (item(2, 0, "Group"),)),
              Container("Group", True, (item(3, 0, CAM),)), Container("Other", False, ())]
    assert shows(scenes, "Main", "Group") and shows(scenes, "Main", "Main")
    assert not shows(scenes, "Group", "Main") and not shows(scenes, "Other", "Cam scene")
