"""Loaded by a test OBS: obs-websocket 5 cannot create a group, so this script does, when its hotkey
"l2d_test.make_group" is triggered (TriggerHotkeyByName): the source named in the settings' "camera"
moves into a new group "group" inside scene "scene"."""

import obspython as obs  # provided by OBS

_settings = {"scene": "", "camera": "", "group": ""}
_hotkey = [None]


def make_group(pressed):
    if not pressed:
        return
    source = obs.obs_get_source_by_name(_settings["scene"])
    if source is None:
        obs.script_log(obs.LOG_WARNING, "[make_group] no scene " + _settings["scene"])
        return
    scene = obs.obs_scene_from_source(source)
    camera = obs.obs_scene_find_source(scene, _settings["camera"])
    group = obs.obs_scene_add_group(scene, _settings["group"])
    obs.obs_sceneitem_group_add_item(group, camera)
    obs.obs_source_release(source)
    obs.script_log(obs.LOG_INFO, "[make_group] grouped " + _settings["camera"] + " in " + _settings["group"])


def script_update(settings):
    for key in _settings:
        _settings[key] = obs.obs_data_get_string(settings, key)


def script_load(settings):
    script_update(settings)
    _hotkey[0] = obs.obs_hotkey_register_frontend("l2d_test.make_group", "test: make a group", make_group)
