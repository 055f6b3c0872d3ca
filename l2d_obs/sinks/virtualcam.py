"""Publish to a virtual camera through pyvirtualcam (v4l2loopback on Linux, OBS's camera elsewhere)."""

from __future__ import annotations

import logging
import platform
import re

import numpy as np

from ..errors import SinkError
from ..frames import Frame
from .base import Sink

log = logging.getLogger(__name__)


def install_hint(system: str | None = None) -> str:
    system = system or platform.system()
    if system == "Linux":
        return (
            "no virtual camera device: install and load v4l2loopback "
            "(sudo apt install v4l2loopback-dkms && sudo modprobe v4l2loopback exclusive_caps=1), "
            "or send the styled video straight into OBS with --output obs"
        )
    return ("no virtual camera: install OBS Studio 26+ and start its Virtual Camera once (Controls > Start Virtual "
            "Camera), or send the styled video straight into OBS with --output obs")


def backend_reasons(text: str) -> str:
    """pyvirtualcam's failure, one line per backend tried ("'v4l2loopback' backend: ..."), as one line."""
    # A backend's own message may span lines too: split only where the next backend's line starts.
    parts = [" ".join(part.split()) for part in re.split(r"\n(?='[^'\n]+' backend: )", text)]
    return "; ".join(part.rstrip(".") for part in parts if part) or "no backend could open a camera"


class VirtualCamSink(Sink):
    def __init__(self, device: str | None = None, backend: str | None = None) -> None:
        self.device, self.backend = device, backend
        self._cam = None

    @property
    def name(self) -> str:
        return "vcam" + (f":{self.device}" if self.device else "")

    def open(self, width: int, height: int, fps: float) -> None:
        import pyvirtualcam

        if self.backend is not None and self.backend not in pyvirtualcam.camera.BACKENDS:
            known = ", ".join(pyvirtualcam.camera.BACKENDS) or "none"
            raise SinkError(f"unknown virtual camera backend {self.backend!r} (available: {known})")
        try:
            self._cam = pyvirtualcam.Camera(
                width, height, fps, fmt=pyvirtualcam.PixelFormat.RGB, device=self.device, backend=self.backend
            )
        except RuntimeError as exc:
            reason = backend_reasons(str(exc))
            if self.device:
                raise SinkError(f"cannot open virtual camera {self.device}: {reason}") from None
            raise SinkError(f"{install_hint()} (pyvirtualcam: {reason})") from None
        log.info("virtual camera %s (%s) %dx%d @ %.1f", self._cam.device, self._cam.backend, width, height, fps)

    def write(self, frame: Frame) -> None:
        if self._cam is None:
            raise SinkError("virtual camera is not open")
        self._cam.send(np.ascontiguousarray(frame.pixels))

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            cam.close()

    def status(self) -> dict:
        return {"device": self._cam.device} if self._cam is not None else {}
