"""Frames from a capture device (webcam, capture card) through OpenCV.

``device:0`` or ``/dev/video0``; resolution, frame rate and FOURCC (e.g. MJPG, which most USB cameras
need for 720p30) are requests — the camera may pick the nearest mode it has, and ``native_size`` reports
what it really gives. A camera that stops delivering (unplugged) raises SourceLost so the daemon reopens
it with backoff; a frame with the wrong shape is skipped as corrupt.
"""

from __future__ import annotations

import glob
import logging
import sys
import time

import cv2

from ..errors import SourceError
from ..frames import Frame
from .base import CorruptFrame, Source, SourceLost

log = logging.getLogger(__name__)


def list_video_devices() -> list[str]:
    return sorted(glob.glob("/dev/video*")) if sys.platform.startswith("linux") else []


class DeviceSource(Source):
    def __init__(
        self,
        device: int | str,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        fourcc: str | None = None,
    ) -> None:
        super().__init__()
        self.device, self.size, self.requested_fps, self.fourcc = device, size, fps, fourcc
        if fourcc is not None and len(fourcc) != 4:
            raise SourceError(f"camera FOURCC must be 4 characters like MJPG or YUYV, got {fourcc!r}")
        self._cap: cv2.VideoCapture | None = None
        self._fps = fps or 30.0
        self._size: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        return f"device:{self.device}"

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def native_size(self) -> tuple[int, int] | None:
        return self._size

    def open(self) -> None:
        backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        cap = cv2.VideoCapture(self.device, backend)
        if not cap.isOpened():
            cap.release()
            found = ", ".join(list_video_devices()) or "none found"
            raise SourceError(
                f"cannot open camera {self.device} (video devices: {found}); check it is plugged in and not used by another program"
            )
        if self.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc))
        if self.size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        if self.requested_fps:
            cap.set(cv2.CAP_PROP_FPS, self.requested_fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep the driver from queueing stale frames
        fps = cap.get(cv2.CAP_PROP_FPS)
        self._fps = fps if 1 <= fps <= 240 else (self.requested_fps or 30.0)
        self._size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self._cap = cap
        log.info("camera %s opened at %sx%s %.1f fps", self.device, *self._size, self._fps)

    def read(self) -> Frame | None:
        if self._cap is None:
            raise SourceLost(f"camera {self.device} is not open")
        ok, bgr = self._cap.read()  # blocks until the camera delivers (paced by the camera)
        now = time.monotonic()
        if not ok:
            raise SourceLost(f"camera {self.device} stopped delivering frames (unplugged?); retrying")
        if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.size == 0:
            self._next_index += 1
            raise CorruptFrame(f"camera {self.device}: unreadable frame")
        return self._frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), captured_at=now)

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()
