"""The daemon's lifecycle: wiring a source, an engine and sinks, its phases, the control API and OBS
event switching, supervision and a bounded shutdown; and its public API (status, request_switch,
set_bypass, stop, phase). The stage loops are in ``stages``, switching in ``switching``, the numbers
in ``stats``, what an engine must offer in ``engines``."""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, TextIO

from ..config import OBSSettings, SwitchRules
from ..errors import ConfigError, L2DError, MissingWeightsError, SourceError
from ..imageops import size_for_aspect
from ..profiles import Profile, load_profile
from ..progress import ProgressBoard
from ..sinks.base import Sink
from ..sources.base import Source
from ..styles import StyleLibrary
from .engines import EngineFactory, EngineLike, default_engine_factory, switchable
from .stages import Stages
from .stats import Stats, daemon_status, status_line
from .switching import PendingSwitch, StyleSwitcher

log = logging.getLogger(__package__)  # one logger name for the whole daemon, as users see it


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
        self._stop = threading.Event()
        self._fatal: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self.engine: EngineLike | None = None  # what the stages drive (see engines.switchable)
        self.switcher = StyleSwitcher()
        self.styles: StyleLibrary | None = None  # for an engine that switches in place
        self.event_switcher = None
        self.started_at = time.monotonic()
        self.state = "starting"
        # What a user sees: starting (source, outputs) -> loading (the model) -> warming (until the
        # first styled frame) -> running -> stopping -> stopped.
        self.phase = "starting"
        self.progress = progress or ProgressBoard()
        self.busy_threads: list[str] = []  # threads still inside native code after shutdown
        self._loader: threading.Thread | None = None
        self._aspect: float | None = None  # the source's, once open (see _sized)
        self.control = None
        self.stages = Stages(source, sinks, self.stats, self.switcher, self._stop, config.max_frames, host=self)
        self.stages.output_size = (profile.width, profile.height)

    # --- public API ------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the daemon to stop (thread- and signal-safe)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def output_size(self) -> tuple[int, int]:
        return self.stages.output_size

    @property
    def fps(self) -> float:
        return self.stages.fps

    @property
    def _engine(self) -> Any:
        """The engine as its factory built it (the one inside the adapter; tests look into it)."""
        return None if self.engine is None else getattr(self.engine, "inner", self.engine)

    @property
    def _pending(self) -> PendingSwitch | None:
        return self.switcher.pending

    @staticmethod
    def validated_profile(name: str) -> Profile:
        """A profile the engine can take, or a one-line L2DError: the file's fields and ranges, its
        weight files, and its window against its motion modules (shared by switches and --preload)."""
        profile = load_profile(name)
        if profile.model.kind != "tiny":
            from ..weights.assemble import check_profile_files, check_window_fits

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
        return self.switcher.request(profile, active=self.profile if self.engine is not None else None)

    def set_bypass(self, on: bool) -> dict[str, Any]:
        """Raw camera out, engine idle (on), or styling again (off); takes effect at the next frame."""
        bypass = self.stages.bypass
        if on != bypass.is_set():
            (bypass.set if on else bypass.clear)()
            self.event("bypass %s", "on: the raw camera goes out, the engine is idle" if on else "off: styling resumes")
        return {"bypass": on}

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot. Holds no secrets (no OBS password, no control token)."""
        return daemon_status(self)

    def status_line(self) -> str:
        return status_line(self.status(), self.progress.step, self.progress.fraction)

    # --- what the stages report (StageHost) ------------------------------------------------------
    def switched(self, profile: Profile) -> None:
        self.profile = profile

    def styled_frame_published(self, now: float) -> None:
        if self.phase == "warming":
            self.phase = "running"
            self.event("running: first styled frame %.1f s after start", now - self.started_at)

    def event(self, fmt: str, *args: object) -> None:
        """A log line about the daemon's life; on a terminal the live status line is cleared first, so
        the two do not run into each other (the next redraw brings it back)."""
        self._show("")
        log.info(fmt, *args)

    def _set_phase(self, phase: str, step: str | None = None, fraction: float = 0.0) -> None:
        self.phase = phase
        if step is not None:
            self.progress.update(step, fraction)
        self.event("%s%s", phase, f": {step}" if step else "")

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
            self.stages.fps = self.source.fps
            self.stages.output_size = (self.config.output_size or self.source.native_size
                                       or (self.profile.width, self.profile.height))
            self._aspect = self._source_aspect()
            self.profile = self._sized(self.profile)
            # Outputs before the engine: a missing virtual camera should fail before seconds of model loading.
            self.progress.update("opening the outputs", 0.0)
            for sink in self.sinks:
                sink.open(*self.output_size, self.fps)
                opened_sinks.append(sink)
            self._set_phase("loading", f"loading {self.profile.name}")
            built = self._load_engine()
            if built is None:  # stopped while loading
                return self.status()
            self.engine, self.styles = switchable(built, self._factory, self._style_library)
            self.stages.engine = self.engine
            self._start_event_switching()
            self.state = "running"
            self._set_phase("warming")
            stages, engine = self.stages, self.engine
            for target, name in ((stages.capture_loop, "capture"), (stages.engine_loop, "engine"),
                                 (stages.output_loop, "output"), (lambda: self.switcher.run(engine, self._stop), "switch")):
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

    def _load_engine(self) -> Any:
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
        from ..control.server import ControlServer

        self.control = ControlServer(self, port=self.config.control_port)
        self.control.start()

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
        self.stages.close()
        self.switcher.close()
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

    # --- profile switching -----------------------------------------------------------------------
    def _style_library(self, engine: Any) -> StyleLibrary:
        """For an engine that switches in place: the styles it can switch to, its own and the preloads."""
        styles = StyleLibrary(engine.device, engine.dtype, placement=self._style_placement,
                              profile_loader=lambda name: self._sized(load_profile(name)))
        styles.adopt(self.profile, engine.style)
        styles.preload(list(self.config.preload))
        return styles

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
        from ..engine.factory import resolve_device_and_dtype

        return resolve_device_and_dtype(profile, self.config.device, self.config.dtype)

    def _start_event_switching(self) -> None:
        if self.config.obs_events is None:
            return
        from ..control.obs_events import OBSEventSwitcher

        obs, rules = self.config.obs_events
        self.event_switcher = OBSEventSwitcher(obs, rules, lambda request: self.request_switch(request.profile)).start()
