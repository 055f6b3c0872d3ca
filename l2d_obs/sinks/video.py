"""Write published frames to a video file (``file:out.avi``/``.mp4``) or a folder of PNGs (``file:dir/``).

A folder keeps exact pixels and names each file by the frame's input index, which makes order and
completeness checkable; a video file is for watching.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2

from ..errors import SinkError
from ..frames import Frame
from .base import Sink

log = logging.getLogger(__name__)

_FOURCC = {".avi": "MJPG", ".mkv": "MJPG", ".mp4": "mp4v", ".mov": "mp4v"}


class VideoFileSink(Sink):
    records_repeats = False  # each styled frame once, in order (the clip plays at the source's rate)

    def __init__(self, path: str | Path) -> None:
        self.spec = str(path)
        self.path = Path(path)
        self.as_folder = self.spec.endswith(("/", "\\")) or self.path.is_dir()
        self._writer: cv2.VideoWriter | None = None
        self.frames = 0

    @property
    def name(self) -> str:
        return f"file:{self.spec}"

    def open(self, width: int, height: int, fps: float) -> None:
        self.frames = 0
        if self.as_folder:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SinkError(f"cannot create output folder {self.path}: {exc.strerror}") from None
            return
        fourcc = _FOURCC.get(self.path.suffix.lower())
        if fourcc is None:
            raise SinkError(
                f"cannot tell the video format of {self.path}: use .avi, .mkv, .mp4 or .mov, or end the path with / for PNG frames"
            )
        if not self.path.parent.is_dir():
            raise SinkError(f"folder {self.path.parent} does not exist; create it or choose another output path")
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
        if not writer.isOpened():
            raise SinkError(f"cannot write video {self.path} (codec {fourcc}); try an .avi path")
        self._writer = writer

    def write(self, frame: Frame) -> None:
        bgr = cv2.cvtColor(frame.pixels, cv2.COLOR_RGB2BGR)
        if self.as_folder:
            if not cv2.imwrite(str(self.path / f"frame_{frame.index:06d}.png"), bgr):
                raise SinkError(f"cannot write a PNG into {self.path}; is the disk full?")
        elif self._writer is not None:
            self._writer.write(bgr)
        self.frames += 1

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()
