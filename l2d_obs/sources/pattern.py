"""A synthetic moving scene: a drifting colour gradient with a bouncing disc and a frame counter band.

Needs nothing external, so `l2d-obs start --source pattern` works on any machine (demos, CI).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..frames import Frame
from .base import Pacer, Source


class PatternSource(Source):
    def __init__(self, width: int = 640, height: int = 360, fps: float = 30.0, limit: int | None = None) -> None:
        super().__init__()
        self.width, self.height, self._fps, self.limit = width, height, fps, limit
        self._pacer = Pacer(fps)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        self._xx, self._yy = xx / max(width - 1, 1), yy / max(height - 1, 1)

    @property
    def name(self) -> str:
        return f"pattern:{self.width}x{self.height}@{self._fps:g}"

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def native_size(self) -> tuple[int, int]:
        return (self.width, self.height)

    def open(self) -> None:
        self._pacer.reset()

    def render(self, i: int) -> np.ndarray:
        t = i / self._fps
        r = 0.5 + 0.5 * np.sin(2 * math.pi * (self._xx + 0.10 * t))
        g = 0.5 + 0.5 * np.sin(2 * math.pi * (self._yy + 0.07 * t))
        b = np.full_like(r, 0.5 + 0.5 * math.sin(0.5 * t))
        img = (np.stack([r, g, b], axis=-1) * 255).astype(np.uint8)
        cx = int((0.5 + 0.4 * math.sin(1.3 * t)) * self.width)
        cy = int((0.5 + 0.4 * math.cos(0.9 * t)) * self.height)
        cv2.circle(img, (cx, cy), max(2, min(self.width, self.height) // 8), (250, 250, 250), -1)
        return img

    def read(self) -> Frame | None:
        if self.limit is not None and self._next_index >= self.limit:
            return None
        self._pacer.wait()
        return self._frame(self.render(self._next_index))

    def close(self) -> None:
        pass
