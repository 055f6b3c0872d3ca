"""Start-up progress: long steps (model loading, warmup) report ``(step, fraction)`` to a callback.

The callback is the daemon's (status API and terminal line) or nothing; reporting never blocks.
"""

from __future__ import annotations

from typing import Callable

ProgressFn = Callable[[str, float], None]  # (what is happening now, 0..1 of the whole phase)


def no_progress(step: str, fraction: float) -> None:
    pass


class ProgressBoard:
    """The latest ``(step, fraction)`` a loader reported, readable from any thread."""

    def __init__(self) -> None:
        self.step = ""
        self.fraction = 0.0

    def update(self, step: str, fraction: float) -> None:
        # Two plain attribute writes: a reader may pair a new step with the old fraction for an
        # instant, which a progress line can live with; no lock is needed.
        self.step, self.fraction = step, max(0.0, min(1.0, float(fraction)))
