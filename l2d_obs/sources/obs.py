"""Frames from an OBS source or scene, by name, through obs-websocket screenshots.

``GetSourceScreenshot`` renders the source at the size we ask for, so we ask for the smallest size that
still covers the engine's resolution at the source's aspect ratio (fit() then only crops): at 512x512
that keeps a JPEG screenshot around 10 ms on the websocket (DESIGN §6: ~75/s once websocket-client's
pure-Python UTF-8 check is skipped, which OBSClient does).

A wrong password at the first ``open`` is the daemon's to report (one error line, or its --wait retries);
when a reopen after losing OBS is refused (OBS restarted with a new password), the source says so itself,
once (``report_auth_failure``), since the daemon only logs reopen failures at debug level. ``state`` is
"auth failed" while that lasts (the error's own ``state`` says the same).
"""

from __future__ import annotations

import base64
import binascii
import logging
import time

import cv2
import numpy as np

from ..config import OBSSettings
from ..errors import OBSConnectionError, SourceError
from ..frames import Frame
from ..obsclient import OBSAuthError, OBSClient, OBSRequestError, report_auth_failure
from .base import CorruptFrame, Pacer, Source, SourceLost

log = logging.getLogger(__name__)

_NOT_FOUND = 600  # obs-websocket RequestStatus::ResourceNotFound


def decode_data_url(data_url: str) -> np.ndarray:
    """An ``data:image/...;base64,`` URL -> HxWx3 RGB. Raises CorruptFrame."""
    try:
        _, b64 = data_url.split(",", 1)
        raw = np.frombuffer(base64.b64decode(b64, validate=False), dtype=np.uint8)
    except (ValueError, binascii.Error):
        raise CorruptFrame("OBS sent a screenshot that is not a base64 data URL") from None
    bgr = cv2.imdecode(raw, cv2.IMREAD_COLOR) if raw.size else None
    if bgr is None:
        raise CorruptFrame("OBS sent a screenshot that cannot be decoded")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def list_source_names(client: OBSClient) -> list[str]:
    names = [s["sceneName"] for s in client.request("GetSceneList")["scenes"]]
    names += [i["inputName"] for i in client.request("GetInputList")["inputs"]]
    return sorted(set(names))


def cover_size(aspect: float, width: int, height: int) -> tuple[int, int]:
    """Smallest (w, h) with the given aspect (w/h) that covers width x height."""
    if aspect >= width / height:
        return max(8, round(height * aspect)), max(8, height)
    return max(8, width), max(8, round(width / aspect))


class OBSSource(Source):
    def __init__(self, source_name: str, obs: OBSSettings, fps: float = 30.0, quality: int = 80) -> None:
        super().__init__()
        if not source_name:
            raise SourceError("obs: needs a source or scene name, e.g. obs:Camera")
        self.source_name, self.settings, self._fps, self.quality = source_name, obs, fps, quality
        self._client: OBSClient | None = None
        self._request: dict | None = None
        self._canvas: tuple[int, int] | None = None
        self._own_size: tuple[int, int] | None = None
        self._pacer = Pacer(fps)
        self._opened_once = False
        self.state: str | None = None  # "auth failed" while OBS refuses the password

    @property
    def name(self) -> str:
        return f"obs:{self.source_name}"

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def native_size(self) -> tuple[int, int] | None:
        # The source's own size (a scene's is the canvas): styled frames that go back into OBS in place
        # of the source then take its transform as it is.
        return self._own_size

    def open(self) -> None:
        s = self.settings
        try:
            client = OBSClient(s.host, s.port, s.password.reveal()).connect()
        except OBSAuthError as exc:
            self.state = exc.state
            if self._opened_once:  # the first open's failure is the daemon's (or CLI's) one line
                report_auth_failure(exc, s.address)
            raise
        self.state = None
        try:
            names = list_source_names(client)
            if self.source_name not in names:
                raise SourceError(
                    f"OBS has no source or scene named {self.source_name!r} (it has: {', '.join(names) or 'none'}); "
                    "use obs:NAME with one of those"
                )
            video = client.request("GetVideoSettings")
            self._canvas = (int(video["baseWidth"]), int(video["baseHeight"]))
            # One screenshot at the source's own size tells its size and aspect ratio.
            probe = decode_data_url(self._shot(client, {}))
            self._own_size = (probe.shape[1], probe.shape[0])
            aspect = probe.shape[1] / probe.shape[0]
        except CorruptFrame as exc:
            client.close()
            raise SourceError(f"cannot read {self.name}: {exc}") from None
        except BaseException:
            client.close()
            raise
        want_w, want_h = self.preferred_size or self._canvas
        w, h = cover_size(aspect, want_w, want_h)
        self._request = {"imageWidth": w, "imageHeight": h}
        self._client = client
        self._opened_once = True
        self._pacer.reset()
        log.info("capturing %s at %dx%d from OBS %s", self.name, w, h, client.address)

    def _shot(self, client: OBSClient, size: dict) -> str:
        data = {"sourceName": self.source_name, "imageFormat": "jpg", "imageCompressionQuality": self.quality, **size}
        return client.request("GetSourceScreenshot", data)["imageData"]

    def read(self) -> Frame | None:
        client = self._client
        if client is None or self._request is None:
            raise SourceLost(f"{self.name}: not connected to OBS")
        self._pacer.wait()
        captured_at = time.monotonic()
        try:
            data_url = self._shot(client, self._request)
        except OBSRequestError as exc:
            if exc.code == _NOT_FOUND:
                raise SourceLost(f"{self.name} disappeared from OBS; waiting for it to come back") from None
            raise CorruptFrame(f"{self.name}: {exc}") from None
        except OBSConnectionError:
            raise SourceLost(f"lost OBS at {self.settings.address}; reconnecting") from None
        try:
            pixels = decode_data_url(data_url)
        except CorruptFrame:
            self._next_index += 1
            raise
        return self._frame(pixels, captured_at=captured_at)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
