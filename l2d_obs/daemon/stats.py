"""The daemon's numbers: counters the stage threads keep, the JSON status the control API serves and
the one-line live status a terminal shows."""

from __future__ import annotations

import collections
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..sinks.base import Sink

if TYPE_CHECKING:
    from .core import Daemon


class RateMeter:
    """Events per second over the last couple of seconds."""

    def __init__(self, window: float = 2.0) -> None:
        self._times: collections.deque[float] = collections.deque()
        self._window = window
        self._lock = threading.Lock()  # ticked by a stage thread, read by status/control threads

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self._window:
            self._times.popleft()

    def tick(self, now: float) -> None:
        with self._lock:
            self._times.append(now)
            self._trim(now)

    def rate(self, now: float) -> float:
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            span = self._times[-1] - self._times[0]
            return (len(self._times) - 1) / span if span > 0 else 0.0


@dataclass
class Stats:
    frames_captured: int = 0
    frames_engine_in: int = 0
    frames_engine_out: int = 0
    frames_published: int = 0
    frames_repeated: int = 0
    corrupt_frames: int = 0
    reconnects: int = 0
    sink_errors: int = 0
    source_state: str = "starting"
    engine_ms: float = 0.0
    engine_ms_mean: float = 0.0
    latency_ms: float = 0.0
    # (publish time, capture->publish seconds) of recent new frames, for latency-growth checks
    latencies: collections.deque = field(default_factory=lambda: collections.deque(maxlen=20000))
    input_rate: RateMeter = field(default_factory=RateMeter)
    output_rate: RateMeter = field(default_factory=RateMeter)

    def engine_pushed(self, ms: float) -> None:
        self.frames_engine_in += 1
        self.engine_ms = ms
        self.engine_ms_mean += (ms - self.engine_ms_mean) / min(self.frames_engine_in, 50)


def sink_status(sink: Sink) -> dict[str, Any]:
    try:  # a sink that is not open yet may not know its own status
        return {"name": sink.name, **sink.status()}
    except Exception:  # noqa: BLE001 - status must always answer
        return {"name": sink.name}


def daemon_status(d: Daemon) -> dict[str, Any]:
    """A JSON-able snapshot. Holds no secrets (no OBS password, no control token)."""
    s, now = d.stats, time.monotonic()
    recent = [lat for _, lat in list(s.latencies)[-60:]]
    return {
        "pid": os.getpid(),
        "state": d.state,
        "phase": d.phase,
        "loading": {"step": d.progress.step, "progress": round(d.progress.fraction, 3)}
        if d.phase in ("starting", "loading") else None,
        "profile": d.profile.name,
        "bypass": d.stages.bypass.is_set(),
        "source": d.source.name,
        "source_state": s.source_state,
        "sinks": [sink_status(k) for k in d.sinks],
        "output_size": list(d.output_size),
        "fps_target": round(d.fps, 2),
        "fps_in": round(s.input_rate.rate(now), 2),
        "fps_out": round(s.output_rate.rate(now), 2),
        "engine_ms": round(s.engine_ms, 1),
        "engine_ms_mean": round(s.engine_ms_mean, 1),
        "latency_ms": round(s.latency_ms, 1),
        "latency_ms_median": round(1000 * statistics.median(recent), 1) if recent else None,
        "frames_captured": s.frames_captured,
        "frames_published": s.frames_published,
        "frames_repeated": s.frames_repeated,
        "dropped_input": d.stages.inbox.dropped,
        "dropped_output": d.stages.outbox.dropped,
        "corrupt_frames": s.corrupt_frames,
        "reconnects": s.reconnects,
        "sink_errors": s.sink_errors,
        "switch": d.switcher.state(),
        "styles": {} if d.styles is None else
        {"active": d.profile.name, "preloaded": sorted(d.styles.preloaded), **d.styles.held()},
        "uptime_s": round(now - d.started_at, 1),
    }


def status_line(st: dict[str, Any], step: str, fraction: float) -> str:
    """The live line from a status snapshot; while starting or loading, the loader's step instead."""
    if st["phase"] in ("starting", "loading"):
        return f"{st['phase']} {st['profile']}: {step} [{fraction:4.0%}]"
    lat = f"{st['latency_ms']:.0f} ms" if st["frames_published"] else "-"
    line = (
        f"{st['profile']} | in {st['fps_in']:.1f} fps | out {st['fps_out']:.1f} fps | engine {st['engine_ms']:.0f} ms"
        f" | latency {lat} | dropped {st['dropped_input']} | published {st['frames_published']}"
    )
    if st["bypass"]:
        line += " | bypass (raw camera)"
    if st["source_state"] != "live":
        line += f" | {st['source']}: {st['source_state']}"
    if st["corrupt_frames"]:
        line += f" | corrupt {st['corrupt_frames']}"
    return line
