"""The one frame type that crosses every boundary (source -> engine -> sinks)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError


@dataclass(frozen=True, slots=True)
class Frame:
    """An RGB picture with where it came from.

    ``pixels`` is HxWx3 uint8 RGB. ``index`` counts input frames from 0 (a source's own numbering;
    the engine keeps it on the output frame so a caller can pair outputs with inputs).
    ``captured_at`` is a ``time.monotonic()`` timestamp from the moment the source got the frame,
    carried to the sinks to measure end-to-end latency.
    """

    pixels: np.ndarray
    index: int
    captured_at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        p = self.pixels
        if not isinstance(p, np.ndarray) or p.dtype != np.uint8 or p.ndim != 3 or p.shape[2] != 3:
            shape = getattr(p, "shape", None)
            dtype = getattr(p, "dtype", type(p).__name__)
            raise InputError(f"a frame must be an HxWx3 uint8 RGB array, got shape {shape} dtype {dtype}")

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    def with_pixels(self, pixels: np.ndarray) -> "Frame":
        """The same frame (index, timestamp) with other pixels."""
        return Frame(pixels=pixels, index=self.index, captured_at=self.captured_at)
