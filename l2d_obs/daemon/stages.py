"""The stage loops: capture, engine and output, each on its own thread, and bypass.

    capture thread --LatestSlot--> engine thread --LatestSlot--> output thread --> sinks
                     (BoundedQueue for files)      (BoundedQueue for files)

The capture thread fits each camera frame to the engine's size, so the engine thread spends its time
in the model only; it keeps the frame as captured too (bypass and re-warms after a switch use that).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from ..errors import SinkError, SourceError
from ..frames import Frame
from ..handoff import CLOSED, BoundedQueue, LatestSlot
from ..imageops import fit
from ..profiles import Profile
from ..sinks.base import Sink
from ..sources.base import CorruptFrame, Source, SourceLost
from .engines import EngineLike
from .stats import Stats
from .switching import StyleSwitcher

log = logging.getLogger(__package__)  # one logger name for the whole daemon, as users see it

MIN_GAP = 0.75  # of a period: the shortest time between two output frames (no catch-up bursts)
RECENT_CAMERA_FRAMES = 16  # warmups are shorter than the window (<= 24); 16 raw 1080p frames hold ~100 MB


@dataclass(frozen=True)
class CameraFrame:
    raw: Frame  # as captured: bypass sends it out, a switch or a resume re-warms from it
    fitted: Frame | None  # fitted to the engine's size when captured; None in bypass (not needed)


class StageHost(Protocol):
    """What the stages tell the daemon that runs them."""

    def event(self, fmt: str, *args: object) -> None: ...
    def switched(self, profile: Profile) -> None: ...
    def styled_frame_published(self, now: float) -> None: ...


class Stages:
    def __init__(self, source: Source, sinks: list[Sink], stats: Stats, switcher: StyleSwitcher,
                 stop: threading.Event, max_frames: int | None, host: StageHost) -> None:
        self.source, self.sinks, self.stats, self.switcher = source, sinks, stats, switcher
        self._stop, self._max_frames, self._host = stop, max_frames, host
        self.engine: EngineLike | None = None  # set before the threads start
        self.fps = 30.0
        self.output_size: tuple[int, int] = (0, 0)
        self.bypass = threading.Event()  # set by the control thread, read by the capture and engine threads
        self.bypassed = False  # engine thread only: the last frame went out raw
        # The latest camera frames as captured (before fitting to a style's size): a switch re-warms
        # from them, fitted to the new style, whatever its resolution or aspect.
        self.recent_camera: collections.deque[Frame] = collections.deque(maxlen=RECENT_CAMERA_FRAMES)
        live = source.live
        self.inbox: LatestSlot[CameraFrame] | BoundedQueue[CameraFrame] = LatestSlot() if live else BoundedQueue(2)
        self.outbox: LatestSlot[Frame] | BoundedQueue[Frame] = LatestSlot() if live else BoundedQueue(4)

    def close(self) -> None:
        self.inbox.close()
        self.outbox.close()

    # --- capture ---------------------------------------------------------------------------------
    def capture_loop(self) -> None:
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
            if not self._hand_over(self.inbox, CameraFrame(frame, self._fitted_for_engine(frame))):
                return
        self.inbox.close()

    def _fitted_for_engine(self, frame: Frame) -> Frame | None:
        engine = self.engine
        if engine is None or self.bypass.is_set():
            return None
        # Read without a lock: a switch to another size meanwhile only means a second fit on the engine thread.
        return frame.with_pixels(fit(frame.pixels, engine.width, engine.height))

    # --- engine ----------------------------------------------------------------------------------
    def engine_loop(self) -> None:
        assert self.engine is not None
        engine = self.engine  # the same object for the whole run: a switch happens inside it
        while not self._stop.is_set():
            if not self.bypass.is_set() and self._apply_pending_switch():
                self.bypassed = False  # the switch re-warmed from the newest frames already
            item = self.inbox.get(timeout=0.1)
            if item is None:
                continue
            if item is CLOSED:
                if not self._stop.is_set():
                    for out in engine.flush():
                        self._deliver(out)
                break
            self.recent_camera.append(item.raw)
            if self.bypass.is_set():
                self.bypassed = True
                self._to_output(item.raw)  # the output thread fits it to the output size, like any frame
                continue
            if self.bypassed:  # back from a bypass: warm a fresh stream from the recent frames, this one included
                self.bypassed = False
                if not self._apply_pending_switch():  # a switch asked meanwhile re-warms by itself
                    self._resume_after_bypass(engine)
                continue
            frame = self._engine_input(item, engine)
            t0 = time.perf_counter()
            upcoming = self._upcoming(engine)
            outputs = engine.push(frame, upcoming) if upcoming is not None else engine.push(frame)
            self.stats.engine_pushed((time.perf_counter() - t0) * 1000)
            for out in outputs:
                self._deliver(out)
        self.outbox.close()

    def _upcoming(self, engine: EngineLike) -> Frame | None:
        """The next camera frame when it is already waiting (fitted at capture, the object its own push
        will get), for an engine that encodes it beside the current UNet work (``overlap``)."""
        if not getattr(engine, "overlaps", False) or self.bypass.is_set():
            return None
        waiting = self.inbox.peek()
        fitted = getattr(waiting, "fitted", None)
        if fitted is None or (fitted.width, fitted.height) != (engine.width, engine.height):
            return None
        return fitted

    @staticmethod
    def _engine_input(item: CameraFrame, engine: EngineLike) -> Frame:
        fitted = item.fitted
        if fitted is not None and (fitted.width, fitted.height) == (engine.width, engine.height):
            return fitted
        # Captured before a switch to another size (or during a bypass): fit it here.
        return item.raw.with_pixels(fit(item.raw.pixels, engine.width, engine.height))

    def _apply_pending_switch(self) -> bool:
        assert self.engine is not None
        applied = self.switcher.apply_pending(self.engine, list(self.recent_camera))
        if applied is None:
            return False
        profile, outputs = applied
        self._host.switched(profile)
        for out in outputs:
            self._deliver(out)
        return True

    def _deliver(self, frame: Frame) -> None:
        self.stats.frames_engine_out += 1
        self.switcher.frame_delivered()
        self._to_output(frame)

    def _to_output(self, frame: Frame) -> None:
        self._hand_over(self.outbox, frame)

    def _hand_over(self, slot: LatestSlot | BoundedQueue, item: object) -> bool:
        """Put ``item`` in the next stage's slot: a live slot takes it at once (newest wins), a file's
        queue waits for room. False when the daemon stopped while waiting."""
        if isinstance(slot, BoundedQueue):
            while not slot.put(item, timeout=0.2):
                if self._stop.is_set():
                    return False
        else:
            slot.put(item)
        return True

    def _resume_after_bypass(self, engine: EngineLike) -> None:
        """The engine's temporal cache ends where the bypass began: continuing it would attend across
        the gap. Start a fresh stream instead, warmed from the newest camera frames as a style switch
        does (same style, so nothing is re-installed or recompiled); the first styled frame follows at once."""
        engine.reset()
        outputs: list[Frame] = []
        for frame in list(self.recent_camera)[-engine.warmup:]:
            outputs = engine.push(frame.with_pixels(fit(frame.pixels, engine.width, engine.height)))
        self.stats.frames_engine_in += 1
        for out in outputs[-1:]:
            self._deliver(out)

    # --- output ----------------------------------------------------------------------------------
    def output_loop(self) -> None:
        if self.source.live:
            self._output_live()
        else:
            self._output_file()
        self._stop.set()

    def _reached_max_frames(self) -> bool:
        if self._max_frames is not None and self.stats.frames_published >= self._max_frames:
            self._host.event("published %d frames; stopping", self.stats.frames_published)
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
            item = self.outbox.get(timeout=min(wait, 0.1))
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
            # A tick that came late (a busy CPU) must not be followed by one that comes early: frames
            # stay at least 3/4 of a period apart, and the clock keeps its phase when the delay is small.
            next_tick = max(next_tick, time.monotonic() + MIN_GAP * period)

    def _output_file(self) -> None:
        """Files: every frame exactly once, in order; paced at the file's rate unless --no-pace."""
        period = 1.0 / self.fps if self.fps > 0 else 0.0
        paced = self.source.pace
        last_at: float | None = None
        while not self._stop.is_set():
            item = self.outbox.get(timeout=0.1)
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
        if new and not self.bypassed:
            self._host.styled_frame_published(now)
        if new:
            stats.frames_published += 1
            stats.latency_ms = (now - frame.captured_at) * 1000
            stats.latencies.append((now, now - frame.captured_at))
        else:
            stats.frames_repeated += 1
