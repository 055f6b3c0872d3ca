"""The daemon: source -> engine -> sinks on three threads, plus status and control.

    capture thread --LatestSlot--> engine thread --LatestSlot--> output thread --> sinks
                     (BoundedQueue for files)      (BoundedQueue for files)

- Live sources hand over through one-item slots where the newest frame wins: a slow engine drops input
  frames instead of queueing them, so latency stays bounded. Files are never dropped (they play slower).
- For a live source the output thread runs a steady clock at the source's frame rate: each tick publishes
  the newest finished frame, or repeats the last one when nothing new is ready (slow model, OBS gone), so
  a virtual camera or OBS sees an even cadence and never a stall. A file's frames go out once each.
- A lost source (OBS quit, camera unplugged) is reopened with backoff by the capture thread; nothing
  else notices except the status line.
- Profile switches build the new engine on a helper thread while the old one keeps running, and the
  engine thread swaps them between two frames.
- Bypass (control API, `l2d-obs bypass on`): the engine is not called; each camera frame goes out as
  it is, fitted to the output size, so sinks need no reopen. Turning it off restarts the engine's
  stream warmed from the newest camera frames (its cache held frames from before the gap).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, TextIO

from .config import OBSSettings, SwitchRules
from .errors import ConfigError, L2DError, MissingWeightsError, SinkError, SourceError
from .frames import Frame
from .handoff import CLOSED, BoundedQueue, LatestSlot
from .imageops import fit, size_for_aspect
from .profiles import Profile, load_profile
from .progress import ProgressBoard, ProgressFn
from .sinks.base import Sink
from .sources.base import CorruptFrame, Source, SourceLost
from .styles import StyleLibrary

log = logging.getLogger(__name__)


class EngineLike(Protocol):
    width: int
    height: int

    def push(self, frame: Frame) -> list[Frame]: ...
    def flush(self) -> list[Frame]: ...
    def reset(self) -> None: ...


EngineFactory = Callable[[Profile], EngineLike]

RECENT_CAMERA_FRAMES = 16  # warmups are shorter than the window (<= 24); 16 raw 1080p frames hold ~100 MB


def default_engine_factory(device: str | None = None, dtype: str | None = None,
                           progress: ProgressFn | None = None, accel_options: dict | None = None) -> EngineFactory:
    """``accel_options``: the command line's compile / cuda_graphs / channels_last (None: the profile's
    [engine] table, else the device's default)."""
    options = {k: v for k, v in (accel_options or {}).items() if v is not None}
    if progress is not None:
        options["progress"] = progress

    def build(profile: Profile) -> EngineLike:
        from .factory import build_engine  # torch is imported only when an engine is really needed

        return build_engine(profile, device=device, dtype=dtype, **options)

    return build


@dataclass(frozen=True)
class DaemonConfig:
    max_frames: int | None = None  # stop after this many new output frames
    output_size: tuple[int, int] | None = None  # default: the source's size, else the profile's
    wait: bool = False  # wait for the source (OBS) to appear instead of failing at start
    control_port: int | None = None  # None: no control API; 0: any free port
    status_interval: float = 1.0
    status_stream: TextIO | None = None  # where the live status line goes (default stderr)
    shutdown_timeout: float = 1.0  # for the stage threads to finish; the whole stop stays under 2 s
    preload: tuple[str, ...] = ()  # profiles prepared at start so switching to them is fast
    # A profile's width x height is a pixel budget: the engine runs at the source's aspect ratio so the
    # whole camera is styled (False: crop the camera to the profile's own shape).
    keep_source_aspect: bool = True
    # Switch styles on OBS events (scene changes, source visibility, custom events); None: off.
    obs_events: tuple[OBSSettings, SwitchRules] | None = None
    # The command line's --device/--dtype: they win over a style's [engine] table on a switch too.
    device: str | None = None
    dtype: str | None = None


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


class Daemon:
    def __init__(
        self,
        profile: Profile,
        source: Source,
        sinks: list[Sink],
        engine_factory: EngineFactory | None = None,
        config: DaemonConfig = DaemonConfig(),
        progress: ProgressBoard | None = None,
    ) -> None:
        if not sinks:
            raise ConfigError("no output given: use --output vcam, obs, mjpeg, file:PATH or null")
        self.profile, self.source, self.sinks, self.config = profile, source, sinks, config
        self._factory = engine_factory or default_engine_factory()
        self.stats = Stats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._fatal: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self._engine: EngineLike | None = None
        # Switching: requests go to one worker (the newest request wins); what it prepares waits in
        # _pending until the engine thread takes it between two frames.
        self._pending: PendingSwitch | None = None
        self._switch_state: dict[str, Any] = {}
        self._switch_lock = threading.Lock()
        self._switch_requests: LatestSlot[tuple[Profile, float]] = LatestSlot()
        self._awaiting_first_frame: tuple[str, float] | None = None
        self.styles: StyleLibrary | None = None
        self.event_switcher = None
        self._started_at = time.monotonic()
        self.state = "starting"
        # What a user sees: starting (source, outputs) -> loading (the model) -> warming (until the
        # first styled frame) -> running -> stopping -> stopped.
        self.phase = "starting"
        self.progress = progress or ProgressBoard()
        self.busy_threads: list[str] = []  # threads still inside native code after shutdown
        self._loader: threading.Thread | None = None
        self.output_size: tuple[int, int] = (profile.width, profile.height)
        self._aspect: float | None = None  # the source's, once open (see _sized)
        self.fps = 30.0
        self.control = None
        self._bypass = threading.Event()  # set by the control thread, read by the engine thread
        self._bypassed = False  # engine thread only: the last frame went out raw
        live = source.live
        # The latest camera frames as captured (before fitting to a style's size): a switch re-warms
        # from them, fitted to the new style, whatever its resolution or aspect.
        self._recent_camera: collections.deque[Frame] = collections.deque(maxlen=RECENT_CAMERA_FRAMES)
        self._inbox: LatestSlot[Frame] | BoundedQueue[Frame] = LatestSlot() if live else BoundedQueue(2)
        self._outbox: LatestSlot[Frame] | BoundedQueue[Frame] = LatestSlot() if live else BoundedQueue(4)

    # --- public API ------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the daemon to stop (thread- and signal-safe)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @staticmethod
    def validated_profile(name: str) -> Profile:
        """A profile the engine can take, or a one-line L2DError: the file's fields and ranges, its
        weight files, and its window against its motion modules (shared by switches and --preload)."""
        profile = load_profile(name)
        if profile.model.kind != "tiny":
            from .weights.assemble import check_profile_files, check_window_fits

            problems = check_profile_files(profile)
            if problems:
                raise MissingWeightsError(problems[0])
            check_window_fits(profile)
        return profile

    def request_switch(self, name: str) -> dict[str, Any]:
        """Validate a profile now (one-line L2DError on a bad one, nothing changes) and prepare it in
        the background while the current style keeps streaming. The engine thread takes it over
        between two frames. Rapid requests: the newest wins, older unfinished ones are dropped."""
        profile = self._sized(self.validated_profile(name))
        with self._switch_lock:
            idle = self._pending is None and self._switch_state.get("state") in (None, "active", "failed")
            if idle and profile == self.profile and self._engine is not None:
                # e.g. a scene rule for the style already on screen: nothing to prepare, no re-warm
                return {"switching_to": profile.name, "already_active": True}
            self._switch_state = {"profile": profile.name, "state": "preparing"}
        self._switch_requests.put((profile, time.monotonic()))
        return {"switching_to": profile.name}

    def set_bypass(self, on: bool) -> dict[str, Any]:
        """Raw camera out, engine idle (on), or styling again (off); takes effect at the next frame."""
        if on != self._bypass.is_set():
            (self._bypass.set if on else self._bypass.clear)()
            self._event("bypass %s", "on: the raw camera goes out, the engine is idle" if on else "off: styling resumes")
        return {"bypass": on}

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot. Holds no secrets (no OBS password, no control token)."""
        s, now = self.stats, time.monotonic()
        recent = [lat for _, lat in list(s.latencies)[-60:]]
        return {
            "pid": os.getpid(),
            "state": self.state,
            "phase": self.phase,
            "loading": {"step": self.progress.step, "progress": round(self.progress.fraction, 3)}
            if self.phase in ("starting", "loading") else None,
            "profile": self.profile.name,
            "bypass": self._bypass.is_set(),
            "source": self.source.name,
            "source_state": s.source_state,
            "sinks": [self._sink_status(k) for k in self.sinks],
            "output_size": list(self.output_size),
            "fps_target": round(self.fps, 2),
            "fps_in": round(s.input_rate.rate(now), 2),
            "fps_out": round(s.output_rate.rate(now), 2),
            "engine_ms": round(s.engine_ms, 1),
            "engine_ms_mean": round(s.engine_ms_mean, 1),
            "latency_ms": round(s.latency_ms, 1),
            "latency_ms_median": round(1000 * statistics.median(recent), 1) if recent else None,
            "frames_captured": s.frames_captured,
            "frames_published": s.frames_published,
            "frames_repeated": s.frames_repeated,
            "dropped_input": self._inbox.dropped,
            "dropped_output": self._outbox.dropped,
            "corrupt_frames": s.corrupt_frames,
            "reconnects": s.reconnects,
            "sink_errors": s.sink_errors,
            "switch": dict(self._switch_state),
            "styles": self._styles_status(),
            "uptime_s": round(now - self._started_at, 1),
        }

    @staticmethod
    def _sink_status(sink: Sink) -> dict[str, Any]:
        try:  # a sink that is not open yet may not know its own status
            return {"name": sink.name, **sink.status()}
        except Exception:  # noqa: BLE001 - status must always answer
            return {"name": sink.name}

    def _set_phase(self, phase: str, step: str | None = None, fraction: float = 0.0) -> None:
        self.phase = phase
        if step is not None:
            self.progress.update(step, fraction)
        self._event("%s%s", phase, f": {step}" if step else "")

    def status_line(self) -> str:
        st = self.status()
        if self.phase in ("starting", "loading"):
            return f"{self.phase} {self.profile.name}: {self.progress.step} [{self.progress.fraction:4.0%}]"
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

    # --- lifecycle -------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run until stopped, ``max_frames`` published, or a finite source ends. Returns the final status."""
        opened_sinks: list[Sink] = []
        try:
            for name in self.config.preload:  # every style up front, before anything opens or loads
                self.validated_profile(name)
            self._start_control()  # first: `status` and `stop` work in every phase
            self._set_phase("starting", f"opening {self.source.name}")
            self._open_source()
            if self._stop.is_set():
                return self.status()
            self.fps = self.source.fps
            self.output_size = self.config.output_size or self.source.native_size or (self.profile.width, self.profile.height)
            self._aspect = self._source_aspect()
            self.profile = self._sized(self.profile)
            # Outputs before the engine: a missing virtual camera should fail before seconds of model loading.
            self.progress.update("opening the outputs", 0.0)
            for sink in self.sinks:
                sink.open(*self.output_size, self.fps)
                opened_sinks.append(sink)
            self._set_phase("loading", f"loading {self.profile.name}")
            engine = self._load_engine()
            if engine is None:  # stopped while loading
                return self.status()
            self._engine = engine
            self._setup_styles()
            self._start_event_switching()
            self.state = "running"
            self._set_phase("warming")
            for target, name in ((self._capture_loop, "capture"), (self._engine_loop, "engine"), (self._output_loop, "output"),
                                 (self._switch_loop, "switch")):
                t = threading.Thread(target=self._guard(target), name=f"l2d-{name}", daemon=True)
                self._threads.append(t)
                t.start()
            self._supervise()
        finally:
            self.state = "stopping"
            self.phase = "stopping"
            self._shutdown(opened_sinks)
            self.state = self.phase = "stopped"
        if self._fatal is not None:
            raise self._fatal
        return self.status()

    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - a dead stage must stop the daemon with its reason
                if not isinstance(exc, L2DError):
                    log.exception("%s failed", threading.current_thread().name)
                self._fatal = self._fatal or exc
                self._stop.set()

        return run

    def _open_source(self) -> None:
        self.source.preferred_size = (self.profile.width, self.profile.height)
        delay = 0.5
        said = ""
        while True:
            try:
                self.source.open()
                self.stats.source_state = "live"
                return
            except SourceError as exc:
                if not self.config.wait:
                    raise
                self.stats.source_state = getattr(exc, "state", None) or "waiting"  # e.g. "auth failed"
                # Once per reason, not at every retry (the status line shows that it is still waiting).
                (log.warning if str(exc) != said else log.debug)("%s; retrying in %.1f s", exc, delay)
                said = str(exc)
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, 5.0)

    def _load_engine(self) -> EngineLike | None:
        """Build the engine on a loader thread so a stop (signal, `l2d-obs stop`) is obeyed at once;
        the main thread shows progress meanwhile. None when stopped first: the loader is then left to
        finish on its own (a daemon thread) and the process exits without waiting for it."""
        result: dict[str, Any] = {}

        def load() -> None:
            try:
                result["engine"] = self._factory(self.profile)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                result["error"] = exc

        self._loader = threading.Thread(target=load, name="l2d-load", daemon=True)
        self._loader.start()
        shown = ""
        while self._loader.is_alive():
            if self._stop.wait(0.1):
                return None
            line = self.status_line()
            if line != shown:
                shown = line
                if not self._show(line):
                    log.info("%s", line)
        if shown:
            self._show("")
        if "error" in result:
            raise result["error"]
        return result["engine"]

    def _start_control(self) -> None:
        if self.config.control_port is None:
            return
        from .control.server import ControlServer

        self.control = ControlServer(self, port=self.config.control_port)
        self.control.start()

    def _event(self, fmt: str, *args: object) -> None:
        """A log line about the daemon's life; on a terminal the live status line is cleared first, so
        the two do not run into each other (the next redraw brings it back)."""
        self._show("")
        log.info(fmt, *args)

    def _show(self, line: str, end: str = "") -> bool:
        """Redraw the one live status line on a terminal; False (nothing drawn) when not a terminal."""
        stream = self.config.status_stream or sys.stderr
        if not (hasattr(stream, "isatty") and stream.isatty()):
            return False
        stream.write("\r\x1b[2K" + line + end)
        stream.flush()
        return True

    def _supervise(self) -> None:
        """Main thread: show the status line until something stops the daemon."""
        stream = self.config.status_stream or sys.stderr
        tty = hasattr(stream, "isatty") and stream.isatty()
        interval = self.config.status_interval
        last_log = time.monotonic()
        while not self._stop.wait(interval if tty else min(interval, 0.25)):
            if not any(t.is_alive() for t in self._threads):
                break
            now = time.monotonic()
            if not self._show(self.status_line()) and now - last_log >= max(interval, 5.0):
                log.info("%s", self.status_line())
                last_log = now
        self._show(self.status_line(), end="\n")

    def _shutdown(self, opened_sinks: list[Sink]) -> None:
        """Bounded: stage threads get ``shutdown_timeout``; outputs are finalised next (a file stays
        playable), then the control API and event switching; the source last, on a helper thread with
        a short wait, because closing a frozen OBS connection can block. Threads still inside native
        code afterwards are listed in ``busy_threads`` (the CLI then exits without waiting for them)."""
        self._stop.set()
        self._inbox.close()
        self._outbox.close()
        self._switch_requests.close()
        deadline = time.monotonic() + self.config.shutdown_timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        for sink in opened_sinks:
            try:
                sink.close()
            except Exception:  # noqa: BLE001 - shutting down: log and go on releasing the rest
                log.exception("closing %s failed", sink.name)
        if self.control is not None:
            self.control.close()
        if self.event_switcher is not None:
            self.event_switcher.stop()
        # A capture stuck in a blocking read (a hung OBS request) is released by closing the source.
        closer = threading.Thread(target=self._close_source, name="l2d-close-source", daemon=True)
        closer.start()
        closer.join(0.3)
        for t in self._threads:
            t.join(0.05)
        busy = [t for t in (*self._threads, closer, self._loader) if t is not None and t.is_alive()]
        self.busy_threads = [t.name for t in busy]
        if self.busy_threads:
            log.info("left busy at shutdown: %s", ", ".join(self.busy_threads))

    def _close_source(self) -> None:
        try:
            self.source.close()
        except Exception:  # noqa: BLE001
            log.exception("closing %s failed", self.source.name)

    # --- stages ----------------------------------------------------------------------------------
    def _capture_loop(self) -> None:
        delay = 0.5
        src, stats = self.source, self.stats
        opened = True
        while not self._stop.is_set():
            if not opened:
                try:
                    src.open()
                except SourceError as exc:
                    log.debug("reopening %s failed: %s", src.name, exc)
                    stats.source_state = getattr(exc, "state", None) or "reconnecting"
                    if self._stop.wait(delay):
                        break
                    delay = min(delay * 2, 5.0)
                    continue
                opened, delay = True, 0.5
                stats.source_state = "live"
                log.warning("%s is back", src.name)
            try:
                frame = src.read()
            except CorruptFrame as exc:
                stats.corrupt_frames += 1
                log.debug("skipped a frame: %s", exc)
                continue
            except SourceLost as exc:
                log.warning("%s", exc)
                stats.source_state = "reconnecting"
                stats.reconnects += 1
                src.close()
                opened = False
                continue
            if frame is None:  # end of a file
                break
            stats.frames_captured += 1
            stats.input_rate.tick(time.monotonic())
            if isinstance(self._inbox, BoundedQueue):
                while not self._inbox.put(frame, timeout=0.2):
                    if self._stop.is_set():
                        return
            else:
                self._inbox.put(frame)
        self._inbox.close()

    def _engine_loop(self) -> None:
        stats = self.stats
        assert self._engine is not None
        while not self._stop.is_set():
            if not self._bypass.is_set() and self._maybe_swap_engine():
                self._bypassed = False  # the switch re-warmed from the newest frames already
            engine = self._engine
            item = self._inbox.get(timeout=0.1)
            if item is None:
                continue
            if item is CLOSED:
                if not self._stop.is_set():
                    for out in engine.flush():
                        self._deliver(out)
                break
            self._recent_camera.append(item)
            if self._bypass.is_set():
                self._bypassed = True
                self._to_output(item)  # the output thread fits it to the output size, like any frame
                continue
            if self._bypassed:  # back from a bypass: warm a fresh stream from the recent frames, this one included
                self._bypassed = False
                if not self._maybe_swap_engine():  # a switch asked meanwhile re-warms by itself
                    self._resume_after_bypass(engine)
                continue
            pixels = fit(item.pixels, engine.width, engine.height)
            t0 = time.perf_counter()
            outputs = engine.push(item.with_pixels(pixels))
            ms = (time.perf_counter() - t0) * 1000
            stats.frames_engine_in += 1
            stats.engine_ms = ms
            stats.engine_ms_mean += (ms - stats.engine_ms_mean) / min(stats.frames_engine_in, 50)
            for out in outputs:
                self._deliver(out)
        self._outbox.close()

    def _deliver(self, frame: Frame) -> None:
        self.stats.frames_engine_out += 1
        if self._awaiting_first_frame is not None:
            name, requested_at = self._awaiting_first_frame
            self._awaiting_first_frame = None
            latency_ms = round((time.monotonic() - requested_at) * 1000, 1)
            with self._switch_lock:
                if self._switch_state.get("profile") == name:
                    self._switch_state = {"profile": name, "state": "active", "latency_ms": latency_ms}
            log.info("style %s active %.0f ms after the request", name, latency_ms)
        self._to_output(frame)

    def _to_output(self, frame: Frame) -> None:
        if isinstance(self._outbox, BoundedQueue):
            while not self._outbox.put(frame, timeout=0.2):
                if self._stop.is_set():
                    return
        else:
            self._outbox.put(frame)

    def _resume_after_bypass(self, engine: EngineLike) -> None:
        """The engine's temporal cache ends where the bypass began: continuing it would attend across
        the gap. Start a fresh stream instead, warmed from the newest camera frames as a style switch
        does (same style, so nothing is re-installed or recompiled); the first styled frame follows at once."""
        engine.reset()
        warmup = getattr(getattr(engine, "settings", None), "warmup", 1)
        outputs: list[Frame] = []
        for frame in list(self._recent_camera)[-warmup:]:
            outputs = engine.push(frame.with_pixels(fit(frame.pixels, engine.width, engine.height)))
        self.stats.frames_engine_in += 1
        for out in outputs[-1:]:
            self._deliver(out)

    def _output_loop(self) -> None:
        if self.source.live:
            self._output_live()
        else:
            self._output_file()
        self._stop.set()

    def _reached_max_frames(self) -> bool:
        if self.config.max_frames is not None and self.stats.frames_published >= self.config.max_frames:
            self._event("published %d frames; stopping", self.stats.frames_published)
            return True
        return False

    def _output_live(self) -> None:
        """A steady clock at the input rate: every tick publishes the newest finished frame, or repeats
        the last one when nothing new is ready, so a virtual camera or OBS sees an even cadence whatever
        the engine does (a new frame waits at most one period for its tick)."""
        period = 1.0 / self.fps if self.fps > 0 else 1.0 / 30
        last: Frame | None = None
        fresh: Frame | None = None
        next_tick: float | None = None
        while not self._stop.is_set():
            wait = 0.1 if next_tick is None else max(0.0, next_tick - time.monotonic())
            item = self._outbox.get(timeout=min(wait, 0.1))
            if item is CLOSED:
                if fresh is not None:  # the last finished frame still goes out
                    self._publish(fresh.with_pixels(fit(fresh.pixels, *self.output_size)), new=True)
                return
            if item is not None:
                fresh = item  # newest wins
                if next_tick is None:
                    next_tick = time.monotonic()  # the very first frame goes out at once
            now = time.monotonic()
            if next_tick is None or now < next_tick:
                continue
            if fresh is not None:
                last, fresh = fresh.with_pixels(fit(fresh.pixels, *self.output_size)), None
                self._publish(last, new=True)
                if self._reached_max_frames():
                    return
            elif last is not None:
                self._publish(last, new=False)
            next_tick += period
            if now - next_tick > period:  # fell behind (a slow sink): restart the clock, no burst
                next_tick = now + period

    def _output_file(self) -> None:
        """Files: every frame exactly once, in order; paced at the file's rate unless --no-pace."""
        period = 1.0 / self.fps if self.fps > 0 else 0.0
        paced = self.source.pace
        last_at: float | None = None
        while not self._stop.is_set():
            item = self._outbox.get(timeout=0.1)
            if item is CLOSED:
                return
            if item is None:
                continue
            if paced and last_at is not None:
                # The source is paced already; this only spreads out frames that finish in a burst.
                gap = time.monotonic() - last_at
                if gap < 0.75 * period:
                    time.sleep(0.75 * period - gap)
            self._publish(item.with_pixels(fit(item.pixels, *self.output_size)), new=True)
            last_at = time.monotonic()
            if self._reached_max_frames():
                return

    def _publish(self, frame: Frame, new: bool) -> None:
        stats = self.stats
        for sink in self.sinks:
            if not new and not sink.records_repeats:
                continue
            try:
                sink.write(frame)
            except SinkError as exc:
                stats.sink_errors += 1
                log.warning("%s: %s", sink.name, exc)
        now = time.monotonic()
        stats.output_rate.tick(now)
        if new and self.phase == "warming" and not self._bypassed:
            self.phase = "running"
            self._event("running: first styled frame %.1f s after start", now - self._started_at)
        if new:
            stats.frames_published += 1
            stats.latency_ms = (now - frame.captured_at) * 1000
            stats.latencies.append((now, now - frame.captured_at))
        else:
            stats.frames_repeated += 1

    # --- profile switching -----------------------------------------------------------------------
    def _setup_styles(self) -> None:
        """A real engine switches styles in place (re-warming its cache); others are rebuilt."""
        engine = self._engine
        if not hasattr(engine, "apply_style"):
            return
        self.styles = StyleLibrary(engine.device, engine.dtype, placement=self._style_placement,
                                   profile_loader=lambda name: self._sized(load_profile(name)))
        self.styles.adopt(self.profile, engine.style)
        self.styles.preload(list(self.config.preload))

    def _source_aspect(self) -> float | None:
        size = self.source.native_size
        if not self.config.keep_source_aspect or not size or size[0] <= 0 or size[1] <= 0:
            return None
        return size[0] / size[1]

    def _sized(self, profile: Profile) -> Profile:
        """The profile at the source's aspect ratio (same pixel budget), when the daemon keeps it."""
        aspect = self._aspect
        if aspect is None:
            return profile
        width, height = size_for_aspect(profile.width, profile.height, aspect)
        if (width, height) == (profile.width, profile.height):
            return profile
        return dataclasses.replace(profile, width=width, height=height)

    def _style_placement(self, profile: Profile):
        """Device and precision for a style: the command line's, else the profile's [engine] table,
        else the best the machine has - the same rule as at start."""
        from .engine.factory import resolve_device_and_dtype

        return resolve_device_and_dtype(profile, self.config.device, self.config.dtype)

    def _start_event_switching(self) -> None:
        if self.config.obs_events is None:
            return
        from .control.obs_events import OBSEventSwitcher

        obs, rules = self.config.obs_events
        self.event_switcher = OBSEventSwitcher(obs, rules, lambda request: self.request_switch(request.profile)).start()

    def _styles_status(self) -> dict[str, Any]:
        if self.styles is None:
            return {}
        return {"active": self.profile.name, "preloaded": sorted(self.styles.preloaded), **self.styles.held()}

    def _switch_loop(self) -> None:
        while not self._stop.is_set():
            item = self._switch_requests.get(timeout=0.2)
            if item is CLOSED:
                return
            if item is None:
                continue
            profile, requested_at = item
            try:
                if self.styles is not None:
                    prepared: Any = self.styles.prepare(profile.name).style
                else:
                    prepared = self._factory(profile)
            except Exception as exc:  # noqa: BLE001 - a failed switch keeps the old style running
                msg = str(exc) if isinstance(exc, L2DError) else f"{type(exc).__name__}: {exc}"
                log.error("switching to %s failed: %s", profile.name, msg)
                with self._switch_lock:
                    if self._switch_state.get("profile") == profile.name:
                        self._switch_state = {"profile": profile.name, "state": "failed", "error": msg}
                continue
            if len(self._switch_requests):
                continue  # a newer request is waiting: this one is already out of date
            with self._switch_lock:
                self._pending = PendingSwitch(profile, prepared, requested_at)

    def _maybe_swap_engine(self) -> bool:
        with self._switch_lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return False
        self._awaiting_first_frame = (pending.profile.name, pending.requested_at)
        from .engine.stream import PreparedStyle  # loaded by now: an engine is running

        if isinstance(pending.prepared, PreparedStyle):
            # Re-warms from the recent camera frames, fitted to the new style's size.
            outputs = self._engine.apply_style(pending.prepared, recent=list(self._recent_camera))
            self.profile = pending.profile
            if self.styles is not None:
                self.styles.activated(pending.profile, pending.prepared)
            for out in outputs:
                self._deliver(out)
        else:
            self.profile, self._engine = pending.profile, pending.prepared
        return True


@dataclass(frozen=True)
class PendingSwitch:
    profile: Profile
    prepared: Any  # a PreparedStyle for the real engine, or a whole new engine for others
    requested_at: float
