"""Soak: many frames through one engine; the resident memory must stay flat after warm-up."""

from __future__ import annotations

import dataclasses
import gc
import logging
import time
from dataclasses import dataclass

from ..engine.stream import StreamEngine
from ..frames import Frame
from .setup import pattern_frames
from .timing import current_rss_bytes

log = logging.getLogger(__name__)

_CYCLE = 64  # distinct pattern frames, re-used with fresh indices (rendering is not what is soaked)


@dataclass
class SoakResult:
    frames: int  # frames pushed after the RSS baseline was taken
    rss_after_warmup_bytes: int
    rss_after_run_bytes: int
    rss_growth_pct: float
    cache_bytes_after_warmup: int
    cache_bytes_after_run: int
    seconds: float

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["rss_growth_pct"] = round(self.rss_growth_pct, 4)
        d["seconds"] = round(self.seconds, 2)
        return d


def run_soak(engine: StreamEngine, frames: int, progress: bool = False) -> SoakResult:
    from tqdm.auto import tqdm

    s = engine.settings
    cycle = pattern_frames(s.width, s.height, _CYCLE)
    engine.reset()
    index = 0

    def push_next() -> None:
        nonlocal index
        src = cycle[index % _CYCLE]
        engine.push(Frame(pixels=src.pixels, index=index))
        index += 1

    # Warm-up: the warmup frames, a full window, and a few more for allocator caches to settle.
    for _ in range(s.window + 2 * _CYCLE // 4):
        push_next()
    gc.collect()
    rss0, cache0 = current_rss_bytes(), engine.cache.nbytes()
    started = time.monotonic()
    for i in tqdm(range(frames), desc="bench soak", unit="frame", disable=not progress, dynamic_ncols=True):
        push_next()
        if (i + 1) % 1000 == 0:
            log.info("soak: %d/%d frames, RSS %.1f MiB", i + 1, frames, current_rss_bytes() / 2**20)
    seconds = time.monotonic() - started
    gc.collect()
    rss1, cache1 = current_rss_bytes(), engine.cache.nbytes()
    engine.reset()
    return SoakResult(
        frames=frames,
        rss_after_warmup_bytes=rss0,
        rss_after_run_bytes=rss1,
        rss_growth_pct=100.0 * (rss1 - rss0) / rss0,
        cache_bytes_after_warmup=cache0,
        cache_bytes_after_run=cache1,
        seconds=seconds,
    )
