"""The engine inside the real daemon (pattern source -> engine -> null sink) against the engine alone.

engine-only: ``engine.push`` in a loop over pre-rendered pattern frames (no threads).
end-to-end: ``Daemon`` with a live ``PatternSource`` and a ``NullSink``; the source runs at twice the
engine-only rate so the engine, not the camera, is the bottleneck (the daemon then drops input frames,
latest wins, as it does with a real camera). Throughput and capture-to-publish latency are taken from
the daemon's own per-frame records after the warmup burst.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import time
from dataclasses import dataclass

from ..engine.stream import StreamEngine
from .config import BenchConfig
from .setup import pattern_frames
from .timing import Clock, percentile

log = logging.getLogger(__name__)


@dataclass
class DaemonResult:
    engine_only_fps: float
    end_to_end_fps: float
    latency_ms_p50: float
    latency_ms_p95: float
    frames_published: int
    frames_measured: int
    dropped_input: int
    source_fps: float

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for key in ("engine_only_fps", "end_to_end_fps", "latency_ms_p50", "latency_ms_p95", "source_fps"):
            d[key] = round(d[key], 3)
        d["end_to_end_over_engine_only"] = round(self.end_to_end_fps / self.engine_only_fps, 3) if self.engine_only_fps else None
        return d


def engine_only_fps(engine: StreamEngine, frames_timed: int, clock: Clock) -> float:
    s = engine.settings
    frames = pattern_frames(s.width, s.height, s.window + frames_timed)
    engine.reset()
    for frame in frames[: s.window]:  # warmup and a full window, untimed
        engine.push(frame)
    t0 = clock.now()
    for frame in frames[s.window :]:
        engine.push(frame)
    elapsed = clock.now() - t0
    engine.reset()
    return frames_timed / elapsed


def _bench_profile(engine: StreamEngine):
    """A profile matching the engine (the daemon reads its name and size; the engine is prebuilt)."""
    from ..profiles import load_profile

    s = engine.settings
    return dataclasses.replace(
        load_profile("tiny"),
        name="bench",
        width=s.width,
        height=s.height,
        t_index_list=tuple(s.t_index_list),
        window=s.window,
        warmup=s.warmup,
    )


def run_daemon_bench(engine: StreamEngine, cfg: BenchConfig) -> DaemonResult:
    from ..daemon import Daemon, DaemonConfig
    from ..sinks.base import NullSink
    from ..sources.pattern import PatternSource

    clock = Clock(engine.device)
    alone = engine_only_fps(engine, cfg.daemon_frames, clock)
    s = engine.settings
    skip = s.window  # warmup burst and the window filling
    source_fps = 2.0 * alone
    engine.reset()
    daemon = Daemon(
        _bench_profile(engine),
        PatternSource(s.width, s.height, fps=source_fps),
        [NullSink()],
        engine_factory=lambda profile: engine,
        config=DaemonConfig(max_frames=skip + cfg.daemon_frames, status_stream=io.StringIO(), status_interval=3600.0),
    )
    started = time.monotonic()
    status = daemon.run()
    log.info("daemon run: %d frames published in %.1f s", status["frames_published"], time.monotonic() - started)
    engine.reset()
    records = list(daemon.stats.latencies)[skip:]
    if len(records) < 2:
        raise RuntimeError(f"the daemon published only {status['frames_published']} frames; nothing to measure")
    publish_times = [t for t, _ in records]
    latencies_ms = [lat * 1000 for _, lat in records]
    span = publish_times[-1] - publish_times[0]
    return DaemonResult(
        engine_only_fps=alone,
        end_to_end_fps=(len(records) - 1) / span if span > 0 else float("nan"),
        latency_ms_p50=percentile(latencies_ms, 50),
        latency_ms_p95=percentile(latencies_ms, 95),
        frames_published=int(status["frames_published"]),
        frames_measured=len(records),
        dropped_input=int(status["dropped_input"]),
        source_fps=source_fps,
    )
