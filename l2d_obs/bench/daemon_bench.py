"""The engine inside the real daemon (pattern source -> engine -> null sink) against the engine alone.

engine-only: ``engine.push`` in a loop over pre-rendered pattern frames (no threads).
end-to-end: ``Daemon`` with a live ``PatternSource`` and a ``NullSink``. The source runs like a camera
at 30 fps, or at 1.5x the engine-only rate when the engine is faster, so the engine, not the camera, is
the bottleneck (the daemon then drops input frames, latest wins, as it does with a real camera). Throughput and capture-to-publish latency are taken from
the daemon's own per-frame records after the warmup burst.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import statistics
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
    engine_ms_in_daemon: float  # the daemon's own running mean of engine.push
    frames_published: int
    frames_measured: int
    dropped_input: int
    source_fps: float
    engine_only_fps_runs: list[float]
    end_to_end_fps_runs: list[float]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for key in ("engine_only_fps", "end_to_end_fps", "latency_ms_p50", "latency_ms_p95", "source_fps", "engine_ms_in_daemon"):
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


def _daemon_run(engine: StreamEngine, cfg: BenchConfig, source_fps: float) -> tuple[list[float], list[float], dict, float]:
    """One daemon run; returns (publish times, latencies ms) after the warmup burst, its status, engine ms."""
    from ..daemon import Daemon, DaemonConfig
    from ..sinks.base import NullSink
    from ..sources.pattern import PatternSource

    s = engine.settings
    skip = s.window  # warmup burst and the window filling
    engine.reset()
    daemon = Daemon(
        _bench_profile(engine),
        PatternSource(s.width, s.height, fps=source_fps),
        [NullSink()],
        engine_factory=lambda profile: engine,
        config=DaemonConfig(max_frames=skip + cfg.daemon_frames, status_stream=io.StringIO(), status_interval=3600.0),
    )
    status = daemon.run()
    engine.reset()
    records = list(daemon.stats.latencies)[skip:]
    if len(records) < 2:
        raise RuntimeError(f"the daemon published only {status['frames_published']} frames; nothing to measure")
    return [t for t, _ in records], [lat * 1000 for _, lat in records], status, float(daemon.stats.engine_ms_mean)


def run_daemon_bench(engine: StreamEngine, cfg: BenchConfig, progress: bool = False) -> DaemonResult:
    """Engine-only and daemon runs alternate, ``repeats`` times; medians of each (a shared machine's
    load drifts within minutes, so one block of each would compare two different machines)."""
    clock = Clock(engine.device)
    engine_only_fps(engine, max(4, cfg.daemon_frames // 4), clock)  # untimed: caches, allocator
    alone, e2e, engine_ms, latencies = [], [], [], []
    published = measured = dropped = 0
    source_fps = cfg.source_fps
    from tqdm.auto import tqdm

    for rep in tqdm(range(cfg.repeats), desc="bench daemon", unit="repetition", disable=not progress, dynamic_ncols=True):
        alone.append(engine_only_fps(engine, cfg.daemon_frames, clock))
        fps = source_fps or max(30.0, 1.5 * alone[-1])
        times, lats, status, ms = _daemon_run(engine, cfg, fps)
        span = times[-1] - times[0]
        e2e.append((len(times) - 1) / span if span > 0 else float("nan"))
        latencies += lats
        engine_ms.append(ms)
        published += int(status["frames_published"])
        measured += len(times)
        dropped += int(status["dropped_input"])
        log.info("daemon repetition %d/%d: engine-only %.1f fps, end-to-end %.1f fps (source %.0f fps)",
                 rep + 1, cfg.repeats, alone[-1], e2e[-1], fps)
    return DaemonResult(
        engine_only_fps=statistics.median(alone),
        end_to_end_fps=statistics.median(e2e),
        latency_ms_p50=percentile(latencies, 50),
        latency_ms_p95=percentile(latencies, 95),
        engine_ms_in_daemon=statistics.median(engine_ms),
        frames_published=published,
        frames_measured=measured,
        dropped_input=dropped,
        source_fps=source_fps or max(30.0, 1.5 * statistics.median(alone)),
        engine_only_fps_runs=[round(x, 3) for x in alone],
        end_to_end_fps_runs=[round(x, 3) for x in e2e],
    )
