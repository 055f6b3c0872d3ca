"""Issue 11: with a real headless OBS, the styled camera replaces the camera where it is shown — in
every scene, at the camera item's own place, under the overlays above it — follows scenes edited while
it runs, and leaves every scene exactly as it found it."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from l2d_obs.config import OBSSettings, Secret
from l2d_obs.daemon import Daemon, DaemonConfig, default_engine_factory
from l2d_obs.errors import SinkError
from l2d_obs.frames import Frame
from l2d_obs.profiles import load_profile
from l2d_obs.sinks.obs_return import OBSReturnSink
from l2d_obs.sources.obs import OBSSource, decode_data_url
from tests.daemon.daemon_helpers import cli, cli_env, cli_run, wait_until
from tests.obs_harness import add_color_source

pytestmark = pytest.mark.obs

CAMERA_SIZE = (320, 180)
MAGENTA, GREEN, BLUE, RED, GREY = (255, 0, 255), (0, 255, 0), (0, 0, 255), (255, 0, 0), (200, 200, 200)


def settings_for(obs) -> OBSSettings:
    c = obs.conn
    return OBSSettings(c.host, c.port, Secret(c.password))


def scene_state(client, scene: str) -> list[tuple]:
    """What must come back unchanged: each item's source, id, order, visibility, blend mode and transform."""
    items = client.request("GetSceneItemList", {"sceneName": scene})["sceneItems"]
    return [(i["sourceName"], i["sceneItemId"], i["sceneItemIndex"], i["sceneItemEnabled"], i["sceneItemBlendMode"],
             tuple(sorted(i["sceneItemTransform"].items()))) for i in items]


def items(client, scene: str) -> list[dict]:
    return sorted(client.request("GetSceneItemList", {"sceneName": scene})["sceneItems"], key=lambda i: i["sceneItemIndex"])


def item_id(client, scene: str, source: str) -> int:
    return client.request("GetSceneItemId", {"sceneName": scene, "sourceName": source})["sceneItemId"]


def place(client, scene: str, source: str, **transform) -> None:
    client.request("SetSceneItemTransform", {"sceneName": scene, "sceneItemId": item_id(client, scene, source),
                                             "sceneItemTransform": transform})


def screenshot(client, source: str) -> np.ndarray:
    return decode_data_url(client.request("GetSourceScreenshot", {"sourceName": source, "imageFormat": "png"})["imageData"])


def colour_at(img: np.ndarray, x: int, y: int) -> tuple[int, ...]:
    return tuple(int(v) for v in img[y - 2:y + 3, x - 2:x + 3].reshape(-1, 3).mean(0))


def near(a, b, tol: int = 24) -> bool:
    return max(abs(int(p) - int(q)) for p, q in zip(a, b)) <= tol


def twins_directly_above_cameras(client, scene: str, camera: str, twin: str) -> bool:
    listed = items(client, scene)
    cams = [n for n, i in enumerate(listed) if i["sourceName"] == camera]
    twins = [n for n, i in enumerate(listed) if i["sourceName"] == twin]
    return [n + 1 for n in cams] == twins


class Feeder:
    """Writes a two-colour test picture (magenta left half, green right half) to the sink at 30 fps,
    standing in for the engine: where the picture lands in a scene shows the twin's placement."""

    def __init__(self, sink: OBSReturnSink, size=CAMERA_SIZE) -> None:
        w, h = size
        self.pixels = np.zeros((h, w, 3), np.uint8)
        self.pixels[:, : w // 2] = MAGENTA
        self.pixels[:, w // 2:] = GREEN
        self.sink, self._stop = sink, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            self.sink.write(Frame(self.pixels, index=i, captured_at=time.monotonic()))
            i += 1
            time.sleep(1 / 30)

    def __enter__(self) -> "Feeder":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(2)


@pytest.fixture
def two_scenes(obs, request):
    """Scenes A and B show the camera (a grey Color Source, 320x180) at different transforms, each
    with an overlay above it; scene N nests scene A. Names are unique per test."""
    tag = request.node.name[-24:].replace("[", "_").replace("]", "")
    names = {k: f"{k}-{tag}" for k in ("A", "B", "N", "cam", "overlayA", "overlayB", "twin")}
    with obs.conn.client() as c:
        for scene in (names["A"], names["B"], names["N"]):
            c.request("CreateScene", {"sceneName": scene})
        add_color_source(c, names["A"], names["cam"], GREY, size=CAMERA_SIZE)
        c.request("CreateSceneItem", {"sceneName": names["B"], "sourceName": names["cam"]})
        add_color_source(c, names["A"], names["overlayA"], BLUE, size=(60, 40))
        add_color_source(c, names["B"], names["overlayB"], RED, size=(60, 40))
        c.request("CreateSceneItem", {"sceneName": names["N"], "sourceName": names["A"]})
        # A: half size, 40 px cropped off the left, overlay inside the camera's box
        place(c, names["A"], names["cam"], positionX=40.0, positionY=30.0, scaleX=0.5, scaleY=0.5, cropLeft=40)
        place(c, names["A"], names["overlayA"], positionX=60.0, positionY=40.0)
        # B: stretched into a 300x200 box at (300, 100), overlay over its top-left corner
        place(c, names["B"], names["cam"], positionX=300.0, positionY=100.0, boundsType="OBS_BOUNDS_STRETCH",
              boundsWidth=300.0, boundsHeight=200.0)
        place(c, names["B"], names["overlayB"], positionX=320.0, positionY=120.0)
        before = {s: scene_state(c, names[s]) for s in ("A", "B", "N")}
    yield names, before
    with obs.conn.client() as c:
        for key in ("A", "B", "N"):
            c.request("RemoveScene", {"sceneName": names[key]})


def mirror_sink(obs, names) -> OBSReturnSink:
    return OBSReturnSink(settings_for(obs), camera=names["cam"], input_name=names["twin"], check_interval=0.5)


def test_styled_camera_replaces_the_camera_in_every_scene_and_stop_restores_them(obs, two_scenes):
    names, before = two_scenes
    sink = mirror_sink(obs, names)
    sink.open(*CAMERA_SIZE, 30)
    try:
        with Feeder(sink), obs.conn.client() as c:
            for s in ("A", "B"):
                assert twins_directly_above_cameras(c, names[s], names["cam"], names["twin"]), items(c, names[s])
                cam = next(i for i in items(c, names[s]) if i["sourceName"] == names["cam"])
                twin = next(i for i in items(c, names[s]) if i["sourceName"] == names["twin"])
                for key in ("positionX", "positionY", "scaleX", "scaleY", "cropLeft", "boundsType", "boundsWidth", "rotation"):
                    assert twin["sceneItemTransform"][key] == cam["sceneItemTransform"][key], (s, key)
                assert twin["sceneItemLocked"]
            assert not any(i["sourceName"] == names["twin"] for i in items(c, names["N"]))  # A's twin shows there
            assert sink.status()["scenes"] == sorted([names["A"], names["B"]])

            def a_shows_picture() -> bool:
                img = screenshot(c, names["A"])
                # camera box: x 40..180 (source x 40..320 at half size), y 30..120; magenta = source x < 160
                return near(colour_at(img, 50, 110), MAGENTA) and near(colour_at(img, 170, 110), GREEN)

            assert wait_until(a_shows_picture, 10, interval=0.2), "the styled picture never appeared in scene A"
            img_a = screenshot(c, names["A"])
            assert near(colour_at(img_a, 90, 60), BLUE)  # the overlay stays above the styled camera
            assert near(colour_at(img_a, 95, 110), MAGENTA) and near(colour_at(img_a, 105, 110), GREEN)  # edge at x=100
            assert near(colour_at(img_a, 250, 200), (0, 0, 0)) and near(colour_at(img_a, 30, 60), (0, 0, 0))
            img_b = screenshot(c, names["B"])
            assert near(colour_at(img_b, 340, 140), RED)  # B's overlay
            assert near(colour_at(img_b, 420, 250), MAGENTA) and near(colour_at(img_b, 480, 250), GREEN)
            assert near(colour_at(img_b, 290, 250), (0, 0, 0)) and near(colour_at(img_b, 610, 250), (0, 0, 0))
            img_n = screenshot(c, names["N"])  # the nested scene shows A with its twin
            assert near(colour_at(img_n, 50, 110), MAGENTA) and near(colour_at(img_n, 90, 60), BLUE)
    finally:
        sink.close()
    with obs.conn.client() as c:
        assert {s: scene_state(c, names[s]) for s in ("A", "B", "N")} == before
        assert names["twin"] not in [i["inputName"] for i in c.request("GetInputList")["inputs"]]
        img_a = screenshot(c, names["A"])
        assert near(colour_at(img_a, 50, 110), GREY)  # the raw camera again


def test_scenes_edited_while_running_follow(obs, two_scenes):
    names, before = two_scenes
    scene_c = names["A"] + "-C"
    sink = mirror_sink(obs, names)
    sink.open(*CAMERA_SIZE, 30)
    try:
        with obs.conn.client() as c:
            c.request("CreateScene", {"sceneName": scene_c})
            t0 = time.monotonic()
            c.request("CreateSceneItem", {"sceneName": scene_c, "sourceName": names["cam"]})
            assert wait_until(lambda: twins_directly_above_cameras(c, scene_c, names["cam"], names["twin"]), 10)
            added_s = time.monotonic() - t0
            # the camera moves and is hidden in A: its twin follows
            place(c, names["A"], names["cam"], positionX=200.0, positionY=150.0, scaleX=0.25, scaleY=0.25, cropLeft=0)
            c.request("SetSceneItemEnabled", {"sceneName": names["A"], "sceneItemId": item_id(c, names["A"], names["cam"]),
                                              "sceneItemEnabled": False})

            def twin_follows() -> bool:
                twin = next((i for i in items(c, names["A"]) if i["sourceName"] == names["twin"]), None)
                return (twin is not None and twin["sceneItemTransform"]["positionX"] == 200.0
                        and twin["sceneItemTransform"]["scaleX"] == 0.25 and not twin["sceneItemEnabled"])

            assert wait_until(twin_follows, 10)
            # the camera leaves scene C: so does its twin
            t0 = time.monotonic()
            c.request("RemoveSceneItem", {"sceneName": scene_c, "sceneItemId": item_id(c, scene_c, names["cam"])})
            assert wait_until(lambda: items(c, scene_c) == [], 10), items(c, scene_c)
            removed_s = time.monotonic() - t0
            # status follows once the keeper has read OBS again after its change: a moment after OBS shows it
            assert wait_until(lambda: sink.status()["scenes"] == sorted([names["A"], names["B"]]), 5), sink.status()
    finally:
        sink.close()
    print(f"twin added {added_s:.2f} s, removed {removed_s:.2f} s after the scene change")
    with obs.conn.client() as c:
        assert scene_state(c, names["B"]) == before["B"]
        assert all(i["sourceName"] != names["twin"] for i in items(c, names["A"]))
        c.request("RemoveScene", {"sceneName": scene_c})


def test_the_next_start_adopts_or_removes_what_a_crashed_run_left(obs, two_scenes):
    names, before = two_scenes
    crashed = mirror_sink(obs, names)
    crashed.open(*CAMERA_SIZE, 30)
    crashed._restore_scenes = lambda: None  # a kill -9: nothing is cleaned up
    crashed.close()
    with obs.conn.client() as c:
        assert all(twins_directly_above_cameras(c, names[s], names["cam"], names["twin"]) for s in ("A", "B"))
        # meanwhile the streamer moves the camera to the top of scene A: A's old twin sits on nothing
        c.request("SetSceneItemIndex", {"sceneName": names["A"], "sceneItemId": item_id(c, names["A"], names["cam"]),
                                        "sceneItemIndex": len(items(c, names["A"])) - 1})
        moved = scene_state(c, names["A"])
    sink = mirror_sink(obs, names)
    sink.open(*CAMERA_SIZE, 30)
    try:
        with obs.conn.client() as c:
            for s in ("A", "B"):
                assert twins_directly_above_cameras(c, names[s], names["cam"], names["twin"]), items(c, names[s])
    finally:
        sink.close()
    with obs.conn.client() as c:
        without_twin = [e for e in moved if e[0] != names["twin"]]
        assert [e[:2] + e[3:] for e in scene_state(c, names["A"])] == [e[:2] + e[3:] for e in without_twin]
        assert scene_state(c, names["B"]) == before["B"]


def test_an_output_that_would_film_itself_is_refused_in_one_line(obs, two_scenes):
    names, before = two_scenes
    nested_in_n = OBSReturnSink(settings_for(obs), camera=names["N"], scene=names["A"], input_name=names["twin"])
    with pytest.raises(SinkError, match="fed back into itself") as err:
        nested_in_n.open(*CAMERA_SIZE, 30)
    assert "\n" not in str(err.value)
    itself = OBSReturnSink(settings_for(obs), camera=names["twin"], input_name=names["twin"])
    with pytest.raises(SinkError, match="is the styled output itself"):
        itself.open(*CAMERA_SIZE, 30)
    with obs.conn.client() as c:
        assert {s: scene_state(c, names[s]) for s in ("A", "B", "N")} == before
    # the command line says the same, in one line, before any model loads
    run = cli_run("start", "--profile", "tiny", "--source", f"obs:{names['N']}", "--output", "obs", "--obs-scene",
                  names["A"], "--obs-input", names["twin"], "--frames", "3", env=cli_env(obs.conn.env()), timeout=120)
    assert run.returncode != 0
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert any("fed back into itself" in line for line in lines), run.stderr
    assert "Traceback" not in run.stderr


def test_the_daemon_styles_the_camera_in_place_at_its_aspect(obs, two_scenes):
    names, before = two_scenes
    profile = load_profile("tiny")
    source = OBSSource(names["cam"], settings_for(obs))
    sink = mirror_sink(obs, names)
    daemon = Daemon(profile, source, [sink], default_engine_factory("cpu", "fp32"), DaemonConfig())
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        assert wait_until(lambda: daemon.phase == "running", 120), daemon.status()
        # the whole 16:9 camera is styled: the engine runs at its aspect, the output at its size
        assert daemon.output_size == CAMERA_SIZE
        assert (daemon.profile.width, daemon.profile.height) == (88, 48)  # tiny's 64x64 budget at 16:9
        with obs.conn.client() as c:
            def styled_in_both() -> bool:
                a, b = screenshot(c, names["A"]), screenshot(c, names["B"])
                return not near(colour_at(a, 150, 100), GREY, 8) and not near(colour_at(b, 500, 250), GREY, 8)

            assert wait_until(styled_in_both, 20, interval=0.3), "the camera area never showed styled frames"
            assert near(colour_at(screenshot(c, names["A"]), 90, 60), BLUE)
            assert near(colour_at(screenshot(c, names["B"]), 340, 140), RED)
    finally:
        daemon.stop()
        runner.join(10)
    with obs.conn.client() as c:
        assert {s: scene_state(c, names[s]) for s in ("A", "B", "N")} == before


def test_l2d_obs_stop_removes_what_a_killed_daemon_left(obs, two_scenes):
    names, before = two_scenes
    env = cli_env(obs.conn.env())
    daemon = cli("start", "--profile", "tiny", "--source", f"obs:{names['cam']}", "--output", "obs", "--obs-input",
                 names["twin"], "--control-port", "0", env=env)
    try:
        with obs.conn.client() as c:
            assert wait_until(lambda: all(twins_directly_above_cameras(c, names[s], names["cam"], names["twin"])
                                          for s in ("A", "B")), 90), daemon.stderr.read() if daemon.poll() is not None else ""
    finally:
        daemon.kill()  # kill -9: the daemon cleans up nothing
        daemon.communicate(timeout=10)
    with obs.conn.client() as c:
        assert scene_state(c, names["A"]) != before["A"]  # the twins are still there
    stop = cli_run("stop", env=env)
    assert stop.returncode == 0, stop.stderr
    assert "removed the styled camera" in stop.stdout and names["A"] in stop.stdout and names["B"] in stop.stdout
    with obs.conn.client() as c:
        assert {s: scene_state(c, names[s]) for s in ("A", "B", "N")} == before
    again = cli_run("stop", env=env)  # nothing left: the usual "no daemon" line
    assert again.returncode != 0 and "no daemon is running" in again.stderr
