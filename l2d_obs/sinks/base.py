"""The sink contract: ``open(width, height, fps)``, ``write(frame)`` for each published frame, ``close()``.

Frames arrive already at the output size, paced by the daemon; a sink must not sleep to pace itself.
``write`` may raise SinkError; the daemon counts it and keeps the other sinks going.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Self

import cv2
import numpy as np

from ..frames import Frame


class Sink(ABC):
    # A live source's output clock repeats the last styled frame when no new one is ready, so a camera
    # never stalls. A recording (a file) takes each styled frame once instead: ``--frames N`` writes N.
    records_repeats: bool = True

    @property
    @abstractmethod
    def name(self) -> str: ...

    @abstractmethod
    def open(self, width: int, height: int, fps: float) -> None: ...

    @abstractmethod
    def write(self, frame: Frame) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    # ``with make_sink(...) as sink:`` closes it on the way out, opened or not (close is safe either way).
    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def status(self) -> dict:
        """Extra fields for the status API (no secrets)."""
        return {}


class NullSink(Sink):
    """Discards frames (benchmarks, or running only for the status line)."""

    def __init__(self) -> None:
        self.frames = 0

    @property
    def name(self) -> str:
        return "null"

    def open(self, width: int, height: int, fps: float) -> None:
        pass

    def write(self, frame: Frame) -> None:
        self.frames += 1

    def close(self) -> None:
        pass


def encode_jpeg(pixels: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


class _SharedJpeg:
    """The last frame's JPEG, so several JPEG outputs (obs, mjpeg) encode each published frame once.
    Keyed by the pixel array itself (identity, not id(): an id can be reused once an array is freed)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pixels: np.ndarray | None = None
        self._quality = -1
        self._jpeg = b""

    def encode(self, pixels: np.ndarray, quality: int) -> bytes:
        with self._lock:
            if pixels is self._pixels and quality == self._quality:
                return self._jpeg
        jpeg = encode_jpeg(pixels, quality)
        with self._lock:
            self._pixels, self._quality, self._jpeg = pixels, quality, jpeg
        return jpeg


_shared_jpeg = _SharedJpeg()


def frame_jpeg(frame: Frame, quality: int = 85) -> bytes:
    """The frame as JPEG, encoded once however many outputs ask for it at the same quality."""
    return _shared_jpeg.encode(frame.pixels, quality)

