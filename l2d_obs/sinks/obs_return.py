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
from ..obsclient import (EVENTS_INPUTS, EVENTS_SCENE_ITEM_TRANSFORMS, EVENTS_SCENE_ITEMS, EVENTS_SCENES, OBSAuthError,
                         OBSClient, OBSRequestError, report_auth_failure)
from .base import Sink, frame_jpeg
from .obs_mirror import Container, SceneMirror, forget_twins, record_twins, shows

log = logging.getLogger(__name__)

DEFAULT_INPUT_NAME = "l2d-obs output"
_PREFIX_LEN = 20  # SOI + the JFIF APP0 segment: identical for every frame from cv2's encoder
_SEND_BUFFER = 64 * 1024
# Wallclock timestamps stop ffmpeg pacing the stream at 25 fps (DESIGN §6); no probing buffer at start.
MIRROR_EVENTS = EVENTS_SCENES | EVENTS_INPUTS | EVENTS_SCENE_ITEMS | EVENTS_SCENE_ITEM_TRANSFORMS
MIRROR_EVENT_TYPES = {
    "SceneCreated", "SceneRemoved", "SceneNameChanged", "InputRemoved", "InputNameChanged",
    "SceneItemCreated", "SceneItemRemoved", "SceneItemListReindexed", "SceneItemEnableStateChanged",
    "SceneItemTransformChanged",
}
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
    """The Media Source playing our stream. With ``camera`` (the OBS source the daemon styles) it is
    shown in place of that source in every scene (``obs_mirror``); otherwise as one full-canvas item
    in ``scene`` (default: the current program scene)."""

    def __init__(
        self,
        obs: OBSSettings,
        scene: str | None = None,
        input_name: str = DEFAULT_INPUT_NAME,
        port: int = 0,
        quality: int = 85,
        wait: bool = False,
        check_interval: float = 2.0,
        camera: str | None = None,
    ) -> None:
        self.settings, self.scene, self.input_name = obs, scene, input_name
        self.port, self.quality, self.wait, self.check_interval = port, quality, wait, check_interval
        # An explicit scene means "one full-canvas item there"; without one, an OBS source is replaced in place.
        self.camera = camera if scene is None else None
        self.styled_source = camera  # what the daemon captures: the output must never feed back into it
        self.mirror = SceneMirror(self.camera, input_name) if self.camera else None
        self._server: JpegStreamServer | None = None
        self._stop = threading.Event()
        self._changed = threading.Event()  # OBS reported a scene change: reconcile now
        self._keeper: threading.Thread | None = None
        self._watcher: threading.Thread | None = None
        self._watch_client: OBSClient | None = None
        self.obs_connected = False
        self.auth_failed = False  # OBS refuses the password (status: obs_state "auth failed")
        self.reconnects = 0
        self._size = (0, 0)
        self._said_nowhere = False
        self._recorded = False

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
        except SinkError:
            self._server.close()
            raise
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
        if self.mirror is not None:
            self._watcher = threading.Thread(target=self._watch, name="obs-return-events", daemon=True)
            self._watcher.start()

    # --- OBS side ------------------------------------------------------------------------------
    def _client(self, timeout: float = 5.0, events: int = 0) -> OBSClient:
        s = self.settings
        return OBSClient(s.host, s.port, s.password.reveal(), timeout=timeout, event_subscriptions=events).connect()

    def _ensure_once(self) -> None:
        with self._client() as client:
            self._ensure(client)

    def _ensure(self, client: OBSClient) -> None:
        containers = SceneMirror.list_containers(client)
        self._refuse_feedback(containers)
        inputs = {i["inputName"]: i for i in client.request("GetInputList")["inputs"]}
        settings = media_source_settings(self.url)
        exists = self.input_name in inputs
        if exists:
            if inputs[self.input_name].get("inputKind") != "ffmpeg_source":
                raise SinkError(f"OBS already has an input named {self.input_name!r} that is not a Media Source; choose --obs-input NAME")
            current = client.request("GetInputSettings", {"inputName": self.input_name})["inputSettings"]
            if any(current.get(k) != v for k, v in settings.items()):
                client.request("SetInputSettings", {"inputName": self.input_name, "inputSettings": settings, "overlay": True})
        if self.mirror is not None:
            self._ensure_mirrored(client, exists, settings, containers)
        else:
            self._ensure_full_canvas(client, exists, settings)
        self.obs_connected = True

    def _refuse_feedback(self, containers: list[Container]) -> None:
        """One line instead of a picture that films itself: the output must not appear inside what is captured."""
        source = self.styled_source
        if source is None:
            return
        if source == self.input_name:
            raise SinkError(f"obs:{source} is the styled output itself; capture the camera source instead (e.g. --source obs:Webcam)")
        if self.mirror is None and self.scene is not None and shows(containers, source, self.scene):
            raise SinkError(
                f"--obs-scene {self.scene!r} is inside obs:{source}: the styled output would be captured again and fed "
                "back into itself; leave out --obs-scene to replace the source where it is shown, or pick another scene")

    def _ensure_mirrored(self, client: OBSClient, exists: bool, settings: dict, containers: list[Container]) -> None:
        assert self.mirror is not None
        created = not exists and self.mirror.create_input(client, settings)
        if not exists and not created:
            self.mirror.reconcile(client, self._size[0], containers)  # says why a group showing the camera gets nothing
            if not self._said_nowhere and not self.mirror.not_placed:
                self._said_nowhere = True
                log.warning("no scene shows %r yet; its styled version appears wherever you add it", self.camera)
            return
        if not self._recorded:  # `l2d-obs stop` can clean up after a killed run
            record_twins(self.mirror.camera, self.input_name, self.settings.address)
            self._recorded = True
        # A listing from before the input was created lacks its first item: read OBS again then.
        changes = self.mirror.reconcile(client, self._size[0], None if created else containers)
        if changes:
            log.debug("obs output: %d twin change(s); shown in %s", changes, ", ".join(self.mirror.places) or "no scene")

    def _ensure_full_canvas(self, client: OBSClient, exists: bool, settings: dict) -> None:
        """One Media Source item filling the canvas of the scene (created, or pointed at our stream)."""
        scene = self.scene or client.request("GetCurrentProgramScene")["currentProgramSceneName"]
        self.scene = scene
        if exists:
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

    def _keep(self) -> None:
        """Watch the Media Source (and in place of a camera, every scene showing it: at once when OBS
        reports a change, else every check_interval); after OBS goes away, reconnect with backoff and
        restore it."""
        client: OBSClient | None = None
        delay, lost = 0.5, not self.obs_connected
        while not self._stop.is_set():
            try:
                if client is None:
                    client = self._client()
                    self.auth_failed = False
                    self._ensure(client)
                    if lost:
                        log.warning("OBS output source %r is back%s", self.input_name,
                                    f" in scene {self.scene!r}" if self.mirror is None else "")
                    delay, lost = 0.5, False
                elif self.mirror is not None:
                    self._ensure(client)
                else:
                    client.request("GetInputSettings", {"inputName": self.input_name})
                if self._changed.wait(self.check_interval):
                    self._changed.clear()
                    self._stop.wait(0.05)  # let a burst of events (a scene being built) settle
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

    def _watch(self) -> None:
        """Scene changes (items added, removed, moved, shown/hidden; scenes added) wake the keeper."""
        client: OBSClient | None = None
        while not self._stop.is_set():
            try:
                if client is None:
                    client = self._watch_client = self._client(events=MIRROR_EVENTS)
                    self._changed.set()  # anything may have changed while we were away
                event = client.next_event(timeout=0.5)
                if event is not None and event[0] in MIRROR_EVENT_TYPES:
                    self._changed.set()
            except OBSConnectionError:
                if client is not None:
                    client.close()
                    client = None
                self._stop.wait(1.0)  # the keeper reports the loss and reconnects on its own schedule
        if client is not None:
            client.close()

    def _restore_scenes(self) -> None:
        """Remove every twin (the Media Source with them): the scenes are left as they were found."""
        if self.mirror is None:
            return
        try:
            with self._client(timeout=1.5) as client:
                self.mirror.remove_all(client)
            forget_twins()
        except OBSConnectionError as exc:
            log.warning("could not remove the styled camera from OBS (%s); the next start or "
                        "'l2d-obs stop' cleans it up", exc)

    # --- frames --------------------------------------------------------------------------------
    def write(self, frame: Frame) -> None:
        if self._server is not None:
            self._server.send(frame_jpeg(frame, self.quality))

    def close(self) -> None:
        self._stop.set()
        self._changed.set()
        watching = self._watch_client
        if watching is not None:
            watching.close()  # ends its wait for the next event now, not at its timeout
        for thread in (self._keeper, self._watcher):
            if thread is not None:
                thread.join(2)
        self._restore_scenes()
        server, self._server = self._server, None
        if server is not None:
            server.close()

    def status(self) -> dict:
        state = "connected" if self.obs_connected else "auth failed" if self.auth_failed else "reconnecting"
        placed = {"replaces": self.camera, "scenes": list(self.mirror.places),
                  "not_shown_in": sorted(self.mirror.not_placed)} if self.mirror else {"scene": self.scene}
        return {"input": self.input_name, **placed, "obs_connected": self.obs_connected,
                "obs_state": state, "viewers": self._server.clients if self._server else 0}
