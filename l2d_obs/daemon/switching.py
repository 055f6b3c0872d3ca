"""Style switching: requests go to one worker (the newest request wins); what it prepares waits until
the engine thread takes it between two frames; the switch is "active" with the first frame after it.

Requests come from the control API, OBS events and hotkeys on their own threads; the worker prepares
on the switch thread (``engine.prepare_style``, slow) while the current style keeps streaming.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..errors import L2DError
from ..frames import Frame
from ..handoff import CLOSED, LatestSlot
from ..profiles import Profile
from .engines import EngineLike

log = logging.getLogger(__package__)  # one logger name for the whole daemon, as users see it


@dataclass(frozen=True)
class PendingSwitch:
    profile: Profile
    prepared: Any  # whatever the engine's prepare_style returned, for its apply_style
    requested_at: float


class StyleSwitcher:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: PendingSwitch | None = None
        self._state: dict[str, Any] = {}
        self._requests: LatestSlot[tuple[Profile, float]] = LatestSlot()
        self._awaiting_first_frame: tuple[str, float] | None = None  # engine thread only

    @property
    def pending(self) -> PendingSwitch | None:
        return self._pending

    def state(self) -> dict[str, Any]:
        """{} before any switch; else the profile and preparing / active (latency_ms) / failed (error)."""
        with self._lock:
            return dict(self._state)

    def request(self, profile: Profile, active: Profile | None) -> dict[str, Any]:
        """Queue ``profile`` (validated by the caller). ``active``: the style on screen, None before an
        engine runs. Asking for the active style while no other switch is under way changes nothing."""
        with self._lock:
            idle = self._pending is None and self._state.get("state") in (None, "active", "failed")
            if idle and active is not None and profile == active:
                # e.g. a scene rule for the style already on screen: nothing to prepare, no re-warm
                return {"switching_to": profile.name, "already_active": True}
            self._state = {"profile": profile.name, "state": "preparing"}
        self._requests.put((profile, time.monotonic()))
        return {"switching_to": profile.name}

    def close(self) -> None:
        self._requests.close()

    def run(self, engine: EngineLike, stop: threading.Event) -> None:
        """The switch thread: prepare each request; only the newest one is kept for the engine thread."""
        while not stop.is_set():
            item = self._requests.get(timeout=0.2)
            if item is CLOSED:
                return
            if item is None:
                continue
            profile, requested_at = item
            try:
                prepared = engine.prepare_style(profile)
            except Exception as exc:  # noqa: BLE001 - a failed switch keeps the old style running
                msg = str(exc) if isinstance(exc, L2DError) else f"{type(exc).__name__}: {exc}"
                log.error("switching to %s failed: %s", profile.name, msg)
                with self._lock:
                    if self._state.get("profile") == profile.name:
                        self._state = {"profile": profile.name, "state": "failed", "error": msg}
                continue
            if len(self._requests):
                continue  # a newer request is waiting: this one is already out of date
            with self._lock:
                self._pending = PendingSwitch(profile, prepared, requested_at)

    def apply_pending(self, engine: EngineLike, recent: list[Frame]) -> tuple[Profile, list[Frame]] | None:
        """Engine thread, between two frames: install the prepared style, if one waits. Returns the new
        profile and the frames to publish at once, or None when nothing was waiting."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return None
        self._awaiting_first_frame = (pending.profile.name, pending.requested_at)
        return pending.profile, engine.apply_style(pending.prepared, recent)

    def frame_delivered(self) -> None:
        """Engine thread, for every finished frame: the first one after a switch makes it active."""
        if self._awaiting_first_frame is None:
            return
        name, requested_at = self._awaiting_first_frame
        self._awaiting_first_frame = None
        latency_ms = round((time.monotonic() - requested_at) * 1000, 1)
        with self._lock:
            if self._state.get("profile") == name:
                self._state = {"profile": name, "state": "active", "latency_ms": latency_ms}
        log.info("style %s active %.0f ms after the request", name, latency_ms)
