"""The source contract: ``open()`` once (or again after a loss), ``read()`` the next frame, ``close()``.

A source paces itself (``read`` returns at the source's rate) and numbers its frames from 0, continuing
across reconnects. ``read`` returns None at the end of a finite stream. Failures are split by what the
daemon should do about them:

- ``SourceLost``: the source went away mid-stream (OBS quit, camera unplugged) — close and reopen with
  backoff while the output keeps showing the last frame;
- ``CorruptFrame``: this one frame is unusable — skip it and count it;
- any other ``SourceError`` from ``open``: cannot start (wrong name, no such camera) — a one-line error.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Self

from ..errors import InputError, SourceError
from ..frames import Frame


class SourceLost(SourceError):
    """The source disappeared mid-stream; reopening later may work."""


class CorruptFrame(InputError):
    """One frame could not be decoded; the stream itself is fine."""


class Source(ABC):
    #: Frames from a live source may be dropped when the engine is slower (latest frame wins);
    #: frames from a file are never dropped (the file plays slower instead).
    live: bool = True
    #: A finite source plays at its frame rate when True, as fast as possible when False (--no-pace);
    #: the daemon's file output follows the same choice. Live sources are paced by nature.
    pace: bool = True

    def __init__(self) -> None:
        self._next_index = 0
        # Size the daemon would like frames in (the engine's); a source may use it to capture smaller.
        self.preferred_size: tuple[int, int] | None = None

    @property
    @abstractmethod
    def name(self) -> str:
        """Short description for status output, e.g. ``obs:Camera``."""

    @property
    @abstractmethod
    def fps(self) -> float:
        """Nominal frame rate (the output is paced at this rate)."""

    @property
    def native_size(self) -> tuple[int, int] | None:
        """(width, height) the source naturally has, known after ``open``; None if it has none."""
        return None

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self) -> Frame | None: ...

    @abstractmethod
    def close(self) -> None: ...

    # ``with make_source(...) as source:`` closes it on the way out, opened or not (close is safe either way).
    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _frame(self, pixels, captured_at: float | None = None) -> Frame:
        frame = Frame(pixels=pixels, index=self._next_index, captured_at=captured_at or time.monotonic())
        self._next_index += 1
        return frame


class Pacer:
    """Sleeps so that successive ticks are 1/fps apart without drifting (absolute deadlines)."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps if fps > 0 else 0.0
        self._next: float | None = None

    def wait(self) -> None:
        if self.period <= 0:
            return
        now = time.monotonic()
        if self._next is None or now - self._next > self.period:
            # First tick, or we fell more than a frame behind: restart the clock instead of bursting.
            self._next = now
        elif self._next > now:
            time.sleep(self._next - now)
        self._next += self.period

    def reset(self) -> None:
        self._next = None
