"""Against a real OBS Studio (Xvfb): the obs: source, the obs output, faults, and publish->visible latency."""

from __future__ import annotations

import statistics
import threading
import time

import numpy as np
import pytest

from l2d_obs.config import OBSSettings, Secret
from l2d_obs.daemon import Daemon
from l2d_obs.errors import OBSConnectionError, SourceError
from l2d_obs.frames import Frame
from l2d_obs.obsclient import OBSClient, OBSRequestError
from l2d_obs.sinks.base import Sink
from l2d_obs.sinks.obs_return import OBSReturnSink
from l2d_obs.sources.obs import OBSSource, decode_data_url
from tests.daemon.daemon_helpers import (
    PassThroughEngine, RecordingSink, cli, cli_env, cli_run, real_engine_factory, run_in_thread, tiny, wait_until,
)
from tests.obs_harness import add_color_source, free_port, set_color

pytestmark = pytest.mark.obs


def settings_for(obs) -> OBSSettings:
    c = obs.conn
    return OBSSettings(c.host, c.port, Secret(c.password))


def make_scene(client: OBSClient, name: str, program: bool = True) -> None:
    client.request("CreateScene", {"sceneName": name})
    if program:
        client.request("SetCurrentProgramScene", {"sceneName": name})


def shows_colour(client: OBSClient, source: str, k: int) -> bool:
    try:
        return nearest(screenshot(client, source).reshape(-1, 3).mean(0)) == k
    except OBSRequestError:  # the daemon has not created it yet
        return False


def screenshot(client: OBSClient, source: str, w: int = 32, h: int = 18) -> np.ndarray:
    data = client.request("GetSourceScreenshot", {"sourceName": source, "imageFormat": "jpg",
                                                  "imageWidth": w, "imageHeight": h})["imageData"]
    return decode_data_url(data)


def test_obs_not_running_is_a_clear_error():
    src = OBSSource("Cam", OBSSettings("127.0.0.1", free_port(), Secret("pw-not-shown")))
    with pytest.raises(OBSConnectionError) as info:
        src.open()
    assert "cannot reach OBS at 127.0.0.1:" in str(info.value) and "--wait" in str(info.value)
    assert "pw-not-shown" not in str(info.value)


def test_wrong_password_is_named(obs):
    s = OBSSettings(obs.conn.host, obs.conn.port, Secret("not-the-password"))
    with pytest.raises(OBSConnectionError, match="refused the password") as info:
        OBSSource("Cam", s).open()
    assert "not-the-password" not in str(info.value)


def test_missing_source_lists_what_obs_has(obs):
    with obs.conn.client() as c:
        make_scene(c, "list-scene", program=False)
        add_color_source(c, "list-scene", "list-colour", (1, 2, 3))
    with pytest.raises(SourceError) as info:
        OBSSource("No Such Cam", settings_for(obs)).open()
    msg = str(info.value)
    assert "no source or scene named 'No Such Cam'" in msg
    assert "list-scene" in msg and "list-colour" in msg


def test_obs_source_captures_at_the_model_size(obs):
    with obs.conn.client() as c:
        make_scene(c, "size-scene", program=False)
        add_color_source(c, "size-scene", "size-colour", (200, 40, 10))
    src = OBSSource("size-colour", settings_for(obs), fps=60)
    src.preferred_size = (64, 64)
    src.open()
    try:
        t0 = time.monotonic()
        frames = [src.read() for _ in range(30)]
        rate = 29 / (time.monotonic() - t0)
    finally:
        src.close()
    assert src.native_size == (640, 360)
    assert frames[0].pixels.shape == (64, 114, 3)  # 16:9 covering 64x64: fit() only crops
    assert np.abs(frames[-1].pixels.reshape(-1, 3).mean(0) - (200, 40, 10)).max() < 6
    assert [f.index for f in frames] == list(range(30))
    assert rate > 25


class ColourLog(Sink):
    """Remembers when each frame was published and its mean colour (for the latency measurement)."""

    def __init__(self) -> None:
        self.log: list[tuple[float, np.ndarray]] = []

    name = "colour-log"

    def open(self, width, height, fps):
        pass

    def write(self, frame: Frame) -> None:
        self.log.append((time.monotonic(), frame.pixels.reshape(-1, 3).mean(0)))

    def close(self):
        pass


POLL = 1 / 60  # screenshot interval of the latency probe (adds ~8 ms on average to each measurement)
PALETTE = np.array([(230, 30, 30), (30, 230, 30), (30, 30, 230), (230, 230, 30), (30, 230, 230), (230, 30, 230)], float)


def nearest(rgb: np.ndarray) -> int | None:
    d = np.abs(PALETTE - rgb).max(axis=1)
    i = int(d.argmin())
    return i if d[i] < 40 else None


@pytest.mark.slow
def test_publish_to_visible_latency_at_30fps(obs, record_property):
    """Publish -> visible in OBS over 20 s at 30 fps: low and not growing (transport only: pass-through model)."""
    with obs.conn.client() as c:
        make_scene(c, "lat-in", program=False)
        add_color_source(c, "lat-in", "lat-cam", tuple(int(v) for v in PALETTE[0]))
        make_scene(c, "lat-out")
    log = ColourLog()
    sink = OBSReturnSink(settings_for(obs), scene="lat-out", input_name="lat-media")
    d = Daemon(tiny(), OBSSource("lat-cam", settings_for(obs), fps=30), [sink, log], PassThroughEngine)
    thread, result = run_in_thread(d.run)
    seen: list[tuple[float, int | None]] = []
    stop = threading.Event()

    def change_colours() -> None:
        with obs.conn.client() as c:
            k = 0
            while not stop.wait(0.5):
                k = (k + 1) % len(PALETTE)
                set_color(c, "lat-cam", tuple(int(v) for v in PALETTE[k]))

    try:
        with obs.conn.client() as viewer:
            assert wait_until(lambda: shows_colour(viewer, "lat-media", 0), 15), \
                "the Media Source never showed the published frames"
            changer = threading.Thread(target=change_colours, daemon=True)
            changer.start()
            t_end = time.monotonic() + 21
            while time.monotonic() < t_end:
                px = screenshot(viewer, "lat-media")
                seen.append((time.monotonic(), nearest(px.reshape(-1, 3).mean(0))))
                time.sleep(max(0.0, seen[-1][0] + POLL - time.monotonic()))  # each screenshot costs OBS a render
        status = d.status()
        capture_to_publish = [lat for _, lat in d.stats.latencies]
    finally:
        stop.set()
        d.stop()
        thread.join(5)
    assert "error" not in result, result

    # Published colour transitions, then the first screenshot showing each new colour.
    published = [(t, nearest(c)) for t, c in log.log]
    transitions = [(t, k) for (t0, k0), (t, k) in zip(published, published[1:]) if k != k0 and k is not None]
    latencies: list[float] = []
    t_of: list[float] = []
    for t_pub, k in transitions:
        shown = next((t for t, s in seen if t >= t_pub and s == k), None)
        if shown is not None and shown < seen[-1][0]:
            latencies.append(shown - t_pub)
            t_of.append(t_pub)
    assert len(latencies) >= 30, (len(transitions), len(latencies))
    ms = np.array(latencies) * 1000
    third = len(ms) // 3
    early, late = float(np.median(ms[:third])), float(np.median(ms[-third:]))
    slope = float(np.polyfit(np.array(t_of) - t_of[0], ms, 1)[0])  # ms of extra latency per second of streaming
    numbers = {
        "transitions": len(ms), "median_ms": round(float(np.median(ms)), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "max_ms": round(float(ms.max()), 1), "first_third_median_ms": round(early, 1), "last_third_median_ms": round(late, 1),
        "fps_in": status["fps_in"], "fps_out": status["fps_out"], "repeated": status["frames_repeated"], "dropped_output": status["dropped_output"],
        "published": status["frames_published"], "slope_ms_per_s": round(slope, 2), "capture_to_publish_median_ms": round(1000 * statistics.median(capture_to_publish), 1),
        "screenshots_per_s": round(len(seen) / 21, 1),
    }
    record_property("obs_latency", numbers)
    print("\nOBS publish->visible latency:", numbers)
    # Thresholds leave room for a loaded 2-core CI machine; a real drift (ffmpeg pacing a 30 fps stream at
    # 25 fps) adds ~200 ms per second, i.e. seconds over this run.
    # (Measured here: median 90-180 ms with the load average at 3-5 on 2 cores, flat over 45 s; ~28 ms on a quiet one.)
    assert numbers["median_ms"] < 300, numbers
    assert slope < 20 and late < early + 150, numbers
    # Output follows the input rate; on a starved CPU the JPEG encode for OBS can cost a frame period, and
    # then the newest frame wins (counted in dropped_output) rather than a queue building up.
    assert status["fps_in"] > 20 and status["fps_out"] > 20, numbers


def frames_in(folder) -> dict[int, np.ndarray]:
    import cv2

    out = {}
    for p in sorted(folder.glob("frame_*.png")):
        out[int(p.stem.split("_")[1])] = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
    return out


@pytest.mark.slow
def test_end_to_end_cli_obs_in_obs_out(obs, tmp_path):
    """`l2d-obs start --profile tiny --source obs:... --output obs --frames N`: OBS shows the daemon's frames."""
    import cv2

    with obs.conn.client() as c:
        make_scene(c, "e2e-in", program=False)
        add_color_source(c, "e2e-in", "e2e-cam", (230, 30, 30))
        make_scene(c, "e2e-out")
    out = tmp_path / "published"
    env = cli_env(obs.conn.env())
    proc = cli("-vv", "start", "--profile", "tiny", "--source", "obs:e2e-cam", "--output", "obs", "--output", f"file:{out}/",
               "--obs-scene", "e2e-out", "--obs-input", "e2e-media", "--frames", "45", "--control-port", "0", env=env)
    shots: list[tuple[float, np.ndarray]] = []
    status_text = ""
    try:
        with obs.conn.client() as viewer:
            k = 0
            last_change = time.monotonic()
            while proc.poll() is None:
                if time.monotonic() - last_change > 0.5:  # the input keeps changing colour
                    k += 1
                    set_color(viewer, "e2e-cam", tuple(int(v) for v in PALETTE[k % len(PALETTE)]))
                    last_change = time.monotonic()
                try:
                    shots.append((time.monotonic(), screenshot(viewer, "e2e-media", 160, 90)))
                except OBSRequestError:
                    pass  # not created yet
                if not status_text and len(list(out.glob("*.png"))) > 5:  # running: ask it how it is doing
                    r = cli_run("status", "--json", env=env)
                    status_text = r.stdout + r.stderr
                time.sleep(0.05)
                if time.monotonic() - last_change > 120:
                    break
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr[-2000:]
    published = frames_in(out)
    assert len(published) == 45
    small = {i: cv2.resize(px, (160, 90), interpolation=cv2.INTER_AREA).astype(int) for i, px in published.items()}
    matched = []
    for _, shot in shots:
        if shot.mean() < 3:
            continue  # the Media Source before its first frame
        errs = {i: np.abs(px - shot.astype(int)).mean() for i, px in small.items()}
        best = min(errs, key=errs.get)
        if errs[best] < 8:
            matched.append(best)
    # What OBS shows are the daemon's frames, many different ones as the input changes. (Their order is
    # checked by the file tests: here equal input colours give near-equal frames, so matches are ambiguous.)
    assert len(matched) >= 10, (len(shots), len(matched))
    assert len(set(matched)) >= 5, matched
    # The password is in no log line, no status output and not on the command line.
    pw = obs.conn.password
    assert status_text and '"frames_published"' in status_text
    assert pw not in stderr and pw not in status_text and pw not in " ".join(proc.args)


@pytest.mark.slow
def test_obs_killed_and_restarted_mid_run(obs, tmp_path):
    """Daemon survives OBS crashing: output keeps going with the last frame, then everything resumes."""
    def setup_scenes() -> None:
        with obs.conn.client() as c:
            names = {s["sceneName"] for s in c.request("GetSceneList")["scenes"]}
            if "kr-in" not in names:
                make_scene(c, "kr-in", program=False)
                add_color_source(c, "kr-in", "kr-cam", (30, 30, 230))
            if "kr-out" not in names:
                make_scene(c, "kr-out")

    setup_scenes()
    rec = RecordingSink(keep_pixels=True)
    s = settings_for(obs)
    sink = OBSReturnSink(s, scene="kr-out", input_name="kr-media", check_interval=0.5)
    d = Daemon(tiny(), OBSSource("kr-cam", s, fps=30), [sink, rec], real_engine_factory)
    thread, result = run_in_thread(d.run)
    try:
        assert wait_until(lambda: d.stats.frames_published >= 5, 90)
        obs.kill()
        assert wait_until(lambda: d.status()["source_state"] == "reconnecting", 10)
        n_pub, n_rep = d.stats.frames_published, d.stats.frames_repeated
        time.sleep(2.0)
        assert d.stats.frames_repeated >= n_rep + 30  # ~30 fps of the last frame while OBS is away
        assert d.stats.frames_published <= n_pub + 3  # only frames already inside the engine come out
        assert thread.is_alive()
        obs.start()  # a crash loses unsaved scenes: put the camera back like a user would
        setup_scenes()
        assert wait_until(lambda: d.status()["source_state"] == "live", 30), d.status()
        n_pub = d.stats.frames_published
        assert wait_until(lambda: d.stats.frames_published >= n_pub + 10, 60)
        assert wait_until(lambda: sink.obs_connected, 15)
        # The Media Source is back and plays the daemon's current frames.
        with obs.conn.client() as viewer:
            def showing_daemon_frames() -> bool:
                try:
                    shot = screenshot(viewer, "kr-media", 64, 36).astype(int)
                except OBSRequestError:
                    return False
                import cv2

                recent = [f for _, f in rec.records[-30:]]
                return shot.mean() > 3 and min(
                    np.abs(cv2.resize(f.pixels, (64, 36), interpolation=cv2.INTER_AREA).astype(int) - shot).mean()
                    for f in recent
                ) < 10

            assert wait_until(showing_daemon_frames, 20)
        st = d.status()
        assert st["reconnects"] >= 1 and st["sinks"][0]["obs_connected"]
    finally:
        d.stop()
        thread.join(5)
    assert "error" not in result, result


def test_doctor_reports_obs_and_missing_camera(obs):
    env = cli_env(obs.conn.env())
    r = cli_run("doctor", env=env, timeout=60)
    lines = r.stdout.splitlines()
    obs_line = next(l for l in lines if l.split()[1:2] == ["OBS"])  # the OBS row (others may mention OBS)
    assert obs_line.startswith("ok") and "29." in obs_line
    if not __import__("glob").glob("/sys/class/video4linux/video*"):
        cam = next(l for l in lines if "virtual camera" in l)
        assert cam.startswith("FAIL") and "v4l2loopback" in cam
        assert r.returncode == 1
    assert obs.conn.password not in r.stdout + r.stderr
    bad = cli_run("doctor", env=cli_env({"L2D_OBS_PORT": str(free_port())}), timeout=60)
    assert any(l.startswith("FAIL") and "cannot reach OBS" in l for l in bad.stdout.splitlines())


@pytest.mark.slow
def test_cli_obs_not_running_errors_or_waits(obs, tmp_path):
    def add_camera() -> None:
        with obs.conn.client() as c:
            if "wait-in" not in {s["sceneName"] for s in c.request("GetSceneList")["scenes"]}:
                make_scene(c, "wait-in", program=False)
                add_color_source(c, "wait-in", "wait-cam", (30, 230, 30))

    obs.stop()
    env = cli_env(obs.conn.env())
    args = ["start", "--profile", "tiny", "--source", "obs:wait-cam", "--output", "null", "--frames", "3",
            "--control-port", "0"]
    r = cli_run(*args, env=env, timeout=60)
    assert r.returncode == 6
    assert r.stderr.strip().splitlines()[-1].startswith(f"l2d-obs: error: cannot reach OBS at 127.0.0.1:{obs.conn.port}")
    assert "--wait" in r.stderr
    proc = cli(*args, "--wait", env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        # Start OBS only once the daemon has really tried and is backing off (its imports alone can
        # take seconds on a loaded machine).
        assert wait_until(lambda: any("retrying in" in line for line in lines), 90), "".join(lines)[-1500:]
        assert proc.poll() is None  # still waiting, with backoff
        obs.start()
        add_camera()  # whether OBS saved it or not, the daemon finds it on its next retry
        proc.wait(timeout=120)
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = "".join(lines)
    assert proc.returncode == 0, stderr[-1500:]
    assert "retrying in" in stderr and "stopped after 3 frames" in stderr
    assert obs.conn.password not in stderr
