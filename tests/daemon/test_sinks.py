from __future__ import annotations

import http.client
import socket
import time

import cv2
import numpy as np
import pytest
import pyvirtualcam
from pyvirtualcam.util import decode_fourcc

from l2d_obs.config import OBSSettings
from l2d_obs.errors import ConfigError, SinkError
from l2d_obs.frames import Frame
from l2d_obs.sinks import make_sink
from l2d_obs.sinks.base import NullSink, encode_jpeg
from l2d_obs.sinks.mjpeg import MJPEGSink
from l2d_obs.sinks.obs_return import JpegStreamServer, OBSReturnSink
from l2d_obs.sinks.video import VideoFileSink
from l2d_obs.sinks.virtualcam import VirtualCamSink, install_hint


def solid(rgb, index=0, size=(64, 48)) -> Frame:
    return Frame(np.full((size[1], size[0], 3), rgb, np.uint8), index)


@pytest.mark.parametrize(
    "spec, cls",
    [("vcam", VirtualCamSink), ("vcam:/dev/video9", VirtualCamSink), ("obs", OBSReturnSink),
     ("mjpeg", MJPEGSink), ("mjpeg:9000", MJPEGSink), ("file:out.avi", VideoFileSink), ("null", NullSink)],
)
def test_sink_specs(spec, cls):
    assert isinstance(make_sink(spec, OBSSettings()), cls)


@pytest.mark.parametrize("spec", ["vcamx", "mjpeg:abc", "file:", "rtmp://x"])
def test_bad_sink_specs(spec):
    with pytest.raises(ConfigError):
        make_sink(spec)


# --- virtual camera ----------------------------------------------------------------------------
class RecorderBackend:
    """A pyvirtualcam backend (registered in its registry) that records what it is sent."""

    instances: list["RecorderBackend"] = []

    def __init__(self, *, width, height, fps, fourcc, device, **kw):
        self.width, self.height, self.fps, self.fourcc, self._device = width, height, fps, fourcc, device
        self.frames: list[tuple[float, np.ndarray]] = []
        self.closed = 0
        RecorderBackend.instances.append(self)

    def send(self, frame):
        self.frames.append((time.monotonic(), frame.copy()))

    def close(self):
        self.closed += 1

    def device(self):
        return self._device or "recorder0"

    def native_fourcc(self):
        return self.fourcc


@pytest.fixture
def recorder_backend():
    pyvirtualcam.register_backend("l2d-test-recorder", RecorderBackend)
    RecorderBackend.instances.clear()
    yield RecorderBackend
    pyvirtualcam.camera.BACKENDS.pop("l2d-test-recorder", None)


def test_vcam_sends_rgb_frames_in_order(recorder_backend):
    sink = VirtualCamSink(backend="l2d-test-recorder")
    sink.open(64, 48, 30)
    for i in range(5):
        sink.write(solid((i * 40, 7, 200), i))
    assert sink.status() == {"device": "recorder0"}
    sink.close()
    cam = recorder_backend.instances[0]
    assert (cam.width, cam.height, cam.fps) == (64, 48, 30)
    assert decode_fourcc(cam.fourcc) == pyvirtualcam.PixelFormat.RGB.value  # packed 8-bit RGB
    assert cam.closed == 1
    assert [f.shape for _, f in cam.frames] == [(64 * 48 * 3,)] * 5
    assert [int(f.reshape(48, 64, 3)[0, 0, 0]) for _, f in cam.frames] == [0, 40, 80, 120, 160]


def test_vcam_without_device_says_what_to_install(monkeypatch):
    # Only the real Linux backend, as on a machine without v4l2loopback (these CI machines have no /dev/video*).
    real = {k: v for k, v in pyvirtualcam.camera.BACKENDS.items() if k == "v4l2loopback"}
    if not real:
        pytest.fail("pyvirtualcam has no v4l2loopback backend on this Linux machine")
    if list(__import__("glob").glob("/dev/video*")):
        pytest.skip("this machine has a video device; the no-device path cannot be shown here")
    monkeypatch.setattr(pyvirtualcam.camera, "BACKENDS", real)
    with pytest.raises(SinkError) as info:
        VirtualCamSink().open(64, 48, 30)
    msg = str(info.value)
    assert "sudo apt install v4l2loopback-dkms && sudo modprobe v4l2loopback exclusive_caps=1" in msg
    assert "\n" not in msg


def test_install_hint_per_platform():
    assert "v4l2loopback" in install_hint("Linux")
    assert all("--output obs" in install_hint(system) for system in ("Linux", "Windows", "Darwin"))
    assert "OBS" in install_hint("Windows") and "Virtual Camera" in install_hint("Darwin")


def test_vcam_unknown_backend():
    with pytest.raises(SinkError, match="unknown virtual camera backend 'nope'"):
        VirtualCamSink(backend="nope").open(64, 48, 30)


# --- files -------------------------------------------------------------------------------------
def test_file_sink_folder_keeps_exact_pixels_and_indices(tmp_path):
    sink = VideoFileSink(str(tmp_path / "out") + "/")
    sink.open(64, 48, 30)
    frames = [Frame(np.random.default_rng(i).integers(0, 255, (48, 64, 3), dtype=np.uint8), i + 10) for i in range(3)]
    for f in frames:
        sink.write(f)
    sink.close()
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["frame_000010.png", "frame_000011.png", "frame_000012.png"]
    back = cv2.cvtColor(cv2.imread(str(tmp_path / "out" / names[1])), cv2.COLOR_BGR2RGB)
    assert np.array_equal(back, frames[1].pixels)


def test_file_sink_video(tmp_path):
    sink = VideoFileSink(tmp_path / "out.avi")
    sink.open(64, 48, 30)
    for i in range(7):
        sink.write(solid((i * 30, 0, 0), i))
    sink.close()
    cap = cv2.VideoCapture(str(tmp_path / "out.avi"))
    reds = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        reds.append(int(bgr[..., 2].mean()))
    assert len(reds) == 7
    assert all(abs(r - i * 30) <= 4 for i, r in enumerate(reds))


def test_file_sink_errors(tmp_path):
    with pytest.raises(SinkError, match="cannot tell the video format"):
        VideoFileSink(tmp_path / "out.xyz").open(64, 48, 30)
    with pytest.raises(SinkError, match="does not exist"):
        VideoFileSink(tmp_path / "missing" / "out.avi").open(64, 48, 30)


# --- mjpeg preview -----------------------------------------------------------------------------
def test_mjpeg_preview_streams_latest_frames():
    sink = MJPEGSink(port=0)
    sink.open(64, 48, 30)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=5)
        conn.request("GET", "/frame.jpg")
        assert conn.getresponse().status == 503
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=5)
        conn.request("GET", "/stream")
        resp = conn.getresponse()
        assert resp.getheader("Content-Type").startswith("multipart/x-mixed-replace")
        sink.write(solid((250, 0, 0)))
        parts = []
        for rgb in [(0, 250, 0), (0, 0, 250)]:
            # read one part: headers, blank line, body
            headers = {}
            while (line := resp.fp.readline().strip()) != b"":
                if b":" in line:
                    k, v = line.split(b":", 1)
                    headers[k.strip().lower()] = v.strip()
            body = resp.fp.read(int(headers[b"content-length"]))
            resp.fp.readline()
            parts.append(cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR))
            sink.write(solid(rgb))
        conn.close()
        assert parts[0][..., 2].mean() > 200  # first part: the red frame (BGR)
        assert parts[1][..., 1].mean() > 200
        conn = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=5)
        conn.request("GET", "/nope")
        assert conn.getresponse().status == 404
    finally:
        sink.close()


# --- obs return transport ------------------------------------------------------------------------
def _connect(server):
    client = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    deadline = time.monotonic() + 5
    while server.clients == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    return client


def _recv_at_least(client, n, received=b""):
    while len(received) < n:
        received += client.recv(65536)
    return received


def test_jpeg_stream_sends_next_frame_start_early():
    server = JpegStreamServer(0)
    try:
        client = _connect(server)
        jpegs = [encode_jpeg(solid((i * 80, 0, 0)).pixels) for i in range(3)]
        received = b""
        for k, j in enumerate(jpegs):
            server.send(j)
            received = _recv_at_least(client, sum(len(x) for x in jpegs[: k + 1]) + 20, received)
        # after frame k comes the start of frame k+1 at once, so ffmpeg can close frame k
        assert received == b"".join(jpegs) + jpegs[0][:20]
        client.close()
    finally:
        server.close()


def test_jpeg_stream_skips_frames_for_a_slow_player():
    server = JpegStreamServer(0)
    try:
        client = _connect(server)
        rng = np.random.default_rng(0)
        jpegs = [encode_jpeg(rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)) for _ in range(4)]
        for i in range(120):  # ~30 MB offered to a player that is not reading
            server.send(jpegs[i % 4])
        time.sleep(0.5)
        client.settimeout(0.5)
        data = b""
        try:
            while True:
                chunk = client.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
        # Only a couple of frames were waiting (socket buffers), not the whole backlog, and they are whole.
        assert 0 < len(data) < 6 * len(jpegs[0]), len(data)
        frames = data.split(b"\xff\xd8\xff\xe0")
        assert len(frames) - 1 <= 6
        client.close()
    finally:
        server.close()
