"""Frames from a video file (OpenCV/FFmpeg), paced at the file's frame rate or as fast as possible.

A file is not live: the daemon never drops its frames (it plays slower when the engine is slow), so
`file:` in -> `file:` out keeps every frame in order.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2

from ..errors import SourceError
from ..frames import Frame
from .base import CorruptFrame, Pacer, Source

log = logging.getLogger(__name__)


class VideoFileSource(Source):
    live = False

    def __init__(self, path: str | Path, pace: bool = True, loop: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.pace, self.loop = pace, loop
        self._cap: cv2.VideoCapture | None = None
        self._fps = 30.0
        self._size: tuple[int, int] | None = None
        self._pacer = Pacer(0)
        self._bad_in_a_row = 0

    @property
    def name(self) -> str:
        return f"file:{self.path}"

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def native_size(self) -> tuple[int, int] | None:
        return self._size

    def open(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"video file {self.path} does not exist; check the path after 'file:'")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise SourceError(f"cannot open {self.path} as a video; is it a video file OpenCV/FFmpeg can read?")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self._fps = fps if 1 <= fps <= 240 else 30.0  # some containers report 0 or nonsense
        self._size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self._cap = cap
        self._pacer = Pacer(self._fps if self.pace else 0)

    def read(self) -> Frame | None:
        if self._cap is None:
            raise SourceError(f"{self.name} is not open")
        self._pacer.wait()
        ok, bgr = self._cap.read()
        if not ok:
            if self.loop and self._next_index > 0:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, bgr = self._cap.read()
            if not ok:
                return None
        if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3:
            self._next_index += 1  # keep numbering aligned with the file's frame positions
            raise CorruptFrame(f"{self.name}: frame {self._next_index - 1} could not be decoded")
        return self._frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()
