"""Publish back into OBS: a local JPEG stream played by an OBS Media Source that this sink manages.

Transport (DESIGN §6, measured with a real OBS): raw concatenated JPEGs over TCP, played by an
``ffmpeg_source`` with ``input_format=mjpeg`` and ``use_wallclock_as_timestamps=1`` (so ffmpeg does not
pace the stream at 25 fps and drift) and ``buffering_mb=0``: median ~28 ms from send to visible.
ffmpeg's JPEG splitter only ends a frame when it sees the next frame's start marker, so with each frame we
also send the first bytes of the next one (every JPEG from the same encoder starts with the same header),
which saves about two frames of delay.

A keeper thread holds its own websocket connection: it creates or updates the Media Source in the chosen
scene, checks it every couple of seconds, and after OBS quits or restarts reconnects with backoff and puts
the source back. The TCP server does not depend on OBS at all; the Media Source reconnects by itself.
A refused password is said once (``report_auth_failure``, shared with the source and the event listener)
and shows as ``obs_state: "auth failed"`` in the sink's status until a login succeeds.
"""

from __future__ import annotations

import logging
import socket
import threading

from ..config import OBSSettings
from ..errors import OBSConnectionError, SinkError
from ..frames import Frame
from ..handoff import CLOSED, LatestSlot
from ..obsclient import OBSAuthError, OBSClient, OBSRequestError, report_auth_failure
from .base import Sink, encode_jpeg

log = logging.getLogger(__name__)

DEFAULT_INPUT_NAME = "l2d-obs output"
_PREFIX_LEN = 20  # SOI + the JFIF APP0 segment: identical for every frame from cv2's encoder
_SEND_BUFFER = 64 * 1024
# Wallclock timestamps stop ffmpeg pacing the stream at 25 fps (DESIGN §6); no probing buffer at start.
FFMPEG_OPTIONS = "use_wallclock_as_timestamps=1 fflags=nobuffer probesize=32768 analyzeduration=0"


class _Client:
    """One connected player. Its own sender thread takes the newest JPEG from a one-item slot, so a player
    that reads slower than we publish skips frames instead of letting them pile up in socket buffers
    (which would add seconds of latency)."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.slot: LatestSlot[bytes] = LatestSlot()
        self.alive = True
        self._sent_prefix: bytes | None = None  # the frame start already sent after the previous frame
        self.thread = threading.Thread(target=self._run, name="obs-return-send", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.alive:
            jpeg = self.slot.get(timeout=0.5)
            if jpeg is CLOSED:
                break
            if jpeg is None:
                continue
            prefix = jpeg[:_PREFIX_LEN]
            # The previous send ended with this frame's first bytes: send the rest, then the next frame's
            # first bytes (every frame from the same encoder starts alike) so ffmpeg can close this frame now.
            body = jpeg[_PREFIX_LEN:] if self._sent_prefix == prefix else jpeg
            try:
                self.conn.sendall(body + prefix)
            except OSError:
                break
            self._sent_prefix = prefix
        self.alive = False
        self.conn.close()

    def close(self) -> None:
        self.alive = False
        self.slot.close()


class JpegStreamServer:
    """TCP server on 127.0.0.1 sending the newest JPEG to every connected client."""

    def __init__(self, port: int = 0) -> None:
        self._sock = socket.create_server(("127.0.0.1", port))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._clients: list[_Client] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="obs-return-accept", daemon=True)
        self._thread.start()

    @property
    def clients(self) -> int:
        with self._lock:
            return sum(c.alive for c in self._clients)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, BlockingIOError):
                continue
            except OSError:
                break
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # A small send buffer: at most a frame or two can wait in the kernel (latency stays bounded).
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)
            conn.settimeout(2.0)  # a player that stops reading entirely is dropped
            with self._lock:
                self._clients = [c for c in self._clients if c.alive] + [_Client(conn)]
            log.debug("obs-return: player connected (%d)", self.clients)

    def send(self, jpeg: bytes) -> None:
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            if client.alive:
                client.slot.put(jpeg)

    def close(self) -> None:
        self._closed.set()
        self._sock.close()
        self._thread.join(1)
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
        for client in clients:
            client.thread.join(1)


def media_source_settings(url: str) -> dict:
    return {
        "is_local_file": False,
        "input": url,
        "input_format": "mjpeg",
        "ffmpeg_options": FFMPEG_OPTIONS,
        "buffering_mb": 0,
        "reconnect_delay_sec": 1,
        "restart_on_activate": False,
        "close_when_inactive": False,
        "hw_decode": False,
    }


class OBSReturnSink(Sink):
    def __init__(
        self,
        obs: OBSSettings,
        scene: str | None = None,
        input_name: str = DEFAULT_INPUT_NAME,
        port: int = 0,
        quality: int = 85,
        wait: bool = False,
        check_interval: float = 2.0,
    ) -> None:
        self.settings, self.scene, self.input_name = obs, scene, input_name
        self.port, self.quality, self.wait, self.check_interval = port, quality, wait, check_interval
        self._server: JpegStreamServer | None = None
        self._stop = threading.Event()
        self._keeper: threading.Thread | None = None
        self.obs_connected = False
        self.auth_failed = False  # OBS refuses the password (status: obs_state "auth failed")
        self.reconnects = 0
        self._size = (0, 0)

    @property
    def name(self) -> str:
        return "obs"

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self._server.port if self._server else self.port}"

    def open(self, width: int, height: int, fps: float) -> None:
        self._size = (width, height)
        try:
            self._server = JpegStreamServer(self.port)
        except OSError as exc:
            raise SinkError(f"cannot listen on 127.0.0.1:{self.port} for OBS ({exc.strerror}); choose another --obs-return-port") from None
        self._stop.clear()
        try:
            self._ensure_once()
        except OBSConnectionError as exc:
            if not self.wait:
                self._server.close()
                raise SinkError(f"cannot set up the OBS Media Source: {exc}") from None
            if isinstance(exc, OBSAuthError):
                self.auth_failed = True
                report_auth_failure(exc, self.settings.address)
            else:
                log.warning("OBS not ready for the output source yet (%s); retrying in the background", exc)
        self._keeper = threading.Thread(target=self._keep, name="obs-return-keeper", daemon=True)
        self._keeper.start()

    # --- OBS side ------------------------------------------------------------------------------
    def _client(self) -> OBSClient:
        s = self.settings
        return OBSClient(s.host, s.port, s.password.reveal()).connect()

    def _ensure_once(self) -> None:
        with self._client() as client:
            self._ensure(client)

    def _ensure(self, client: OBSClient) -> None:
        """Create the Media Source in the scene, or point the existing one at our stream."""
        scene = self.scene or client.request("GetCurrentProgramScene")["currentProgramSceneName"]
        self.scene = scene
        settings = media_source_settings(self.url)
        inputs = {i["inputName"]: i for i in client.request("GetInputList")["inputs"]}
        if self.input_name in inputs:
            if inputs[self.input_name].get("inputKind") != "ffmpeg_source":
                raise SinkError(f"OBS already has an input named {self.input_name!r} that is not a Media Source; choose --obs-input NAME")
            current = client.request("GetInputSettings", {"inputName": self.input_name})["inputSettings"]
            if any(current.get(k) != v for k, v in settings.items()):
                client.request("SetInputSettings", {"inputName": self.input_name, "inputSettings": settings, "overlay": True})
            try:
                item_id = client.request("GetSceneItemId", {"sceneName": scene, "sourceName": self.input_name})["sceneItemId"]
            except OBSRequestError:
                item_id = client.request("CreateSceneItem", {"sceneName": scene, "sourceName": self.input_name})["sceneItemId"]
        else:
            item_id = client.request("CreateInput", {
                "sceneName": scene, "inputName": self.input_name, "inputKind": "ffmpeg_source",
                "inputSettings": settings, "sceneItemEnabled": True,
            })["sceneItemId"]
            log.info("created OBS Media Source %r in scene %r playing %s", self.input_name, scene, self.url)
        video = client.request("GetVideoSettings")
        client.request("SetSceneItemTransform", {"sceneName": scene, "sceneItemId": item_id, "sceneItemTransform": {
            "positionX": 0, "positionY": 0, "boundsType": "OBS_BOUNDS_SCALE_INNER", "boundsAlignment": 0,
            "boundsWidth": float(video["baseWidth"]), "boundsHeight": float(video["baseHeight"]),
        }})
        self.obs_connected = True

    def _keep(self) -> None:
        """Watch the Media Source; after OBS goes away, reconnect with backoff and restore it."""
        client: OBSClient | None = None
        delay, lost = 0.5, not self.obs_connected
        while not self._stop.is_set():
            try:
                if client is None:
                    client = self._client()
                    self.auth_failed = False
                    self._ensure(client)
                    if lost:
                        log.warning("OBS output source %r is back in scene %r", self.input_name, self.scene)
                    delay, lost = 0.5, False
                else:
                    client.request("GetInputSettings", {"inputName": self.input_name})
                self._stop.wait(self.check_interval)
            except (OBSConnectionError, SinkError) as exc:
                if client is not None:
                    client.close()
                    client = None
                if isinstance(exc, OBSAuthError):
                    self.auth_failed = True
                    report_auth_failure(exc, self.settings.address)
                elif not lost:
                    log.warning("OBS output: %s; reconnecting", exc)
                if not lost:
                    self.reconnects += 1
                self.obs_connected, lost = False, True
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
        if client is not None:
            client.close()

    # --- frames --------------------------------------------------------------------------------
    def write(self, frame: Frame) -> None:
        if self._server is not None:
            self._server.send(encode_jpeg(frame.pixels, self.quality))

    def close(self) -> None:
        self._stop.set()
        if self._keeper is not None:
            self._keeper.join(2)
        server, self._server = self._server, None
        if server is not None:
            server.close()

    def status(self) -> dict:
        state = "connected" if self.obs_connected else "auth failed" if self.auth_failed else "reconnecting"
        return {"input": self.input_name, "scene": self.scene, "obs_connected": self.obs_connected,
                "obs_state": state, "viewers": self._server.clients if self._server else 0}
