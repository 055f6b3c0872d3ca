"""Switch styles from OBS events: program scene changes, source visibility, and custom events.

Rules come from the config file's ``[switching]`` section::

    [switching]
    scenes = { "Just Chatting" = "vangogh", "Gameplay" = "cartoon" }   # program scene -> style
    sources = { "Zaum Overlay" = "zaum" }                              # source shown -> style
    custom_events = true    # {"l2d": {"profile": "NAME"}} via BroadcastCustomEvent (Stream Deck, Streamer.bot)

A listener thread holds its own obs-websocket connection subscribed to those events. obs-websocket
delivers events on that connection's receive loop, which must never block on a request, so events go
through a queue to a worker that may ask OBS questions (which source a scene item shows) on a second
connection, then asks the daemon to switch. Losing OBS is not an error here: the listener reconnects
with backoff, like the sources do. A refused password is the exception worth a WARNING: said once
(``report_auth_failure``, shared with the source and the output), and ``auth_failed`` is set meanwhile.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable

from ..config import OBSSettings, SwitchRules
from ..errors import L2DError, OBSConnectionError
from ..obsclient import EVENTS_GENERAL, EVENTS_SCENE_ITEMS, EVENTS_SCENES, OBSAuthError, OBSClient, report_auth_failure

log = logging.getLogger(__name__)


def profile_from_custom_event(event_data: Any) -> str | None:
    """``{"l2d": {"profile": "vangogh"}}`` -> "vangogh"; anything else -> None (not for us)."""
    if not isinstance(event_data, dict):
        return None
    ours = event_data.get("l2d")
    if not isinstance(ours, dict):
        return None
    profile = ours.get("profile")
    return profile if isinstance(profile, str) and profile.strip() else None


@dataclass(frozen=True)
class SwitchRequest:
    profile: str
    reason: str  # e.g. "scene 'Gameplay'", for the log and status


def decide(rules: SwitchRules, event_type: str, data: dict[str, Any], source_of_item: Callable[[str, int], str | None]) -> SwitchRequest | None:
    """Which style an OBS event asks for, if any. ``source_of_item(scene, item_id)`` names a scene item's source."""
    if event_type == "CurrentProgramSceneChanged":
        scene = data.get("sceneName")
        if scene in rules.scenes:
            return SwitchRequest(rules.scenes[scene], f"scene '{scene}'")
    elif event_type == "SceneItemEnableStateChanged":
        if data.get("sceneItemEnabled") and rules.sources:
            source = source_of_item(str(data.get("sceneName")), int(data.get("sceneItemId", -1)))
            if source in rules.sources:
                return SwitchRequest(rules.sources[source], f"source '{source}' shown")
    elif event_type == "CustomEvent" and rules.custom_events:
        profile = profile_from_custom_event(data.get("eventData", data))
        if profile:
            return SwitchRequest(profile, "custom event")
    return None


class OBSEventSwitcher:
    """Listens to OBS and calls ``on_switch(request)`` for every event a rule maps to a style."""

    def __init__(self, obs: OBSSettings, rules: SwitchRules, on_switch: Callable[[SwitchRequest], None]) -> None:
        self.obs = obs
        self.rules = rules
        self.on_switch = on_switch
        self._events: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(maxsize=256)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._requests: OBSClient | None = None
        self.connected = threading.Event()
        self.auth_failed = False  # OBS refuses the password
        self.handled = 0

    def start(self) -> "OBSEventSwitcher":
        for target, name in ((self._listen, "obs-events"), (self._work, "obs-events-worker")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        try:
            self._events.put_nowait(None)
        except queue.Full:
            pass
        for thread in self._threads:
            thread.join(timeout)
        if self._requests is not None:
            self._requests.close()

    # -- threads --------------------------------------------------------------------------------

    def _listen(self) -> None:
        mask = EVENTS_GENERAL | EVENTS_SCENES | EVENTS_SCENE_ITEMS
        delay = 0.5
        while not self._stop.is_set():
            client = OBSClient(self.obs.host, self.obs.port, self.obs.password.reveal(), event_subscriptions=mask)
            try:
                client.connect()
            except OBSConnectionError as exc:
                if isinstance(exc, OBSAuthError):
                    self.auth_failed = True
                    report_auth_failure(exc, self.obs.address)
                log.debug("event listener: %s; retrying in %.1fs", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay, self.auth_failed = 0.5, False
            self.connected.set()
            try:
                while not self._stop.is_set():
                    event = client.next_event(timeout=0.5)
                    if event is not None:
                        try:
                            self._events.put_nowait(event)
                        except queue.Full:  # a storm of events: the newest ones still matter most
                            log.warning("OBS event queue full; dropping an event")
            except OBSConnectionError as exc:
                log.info("event listener lost OBS (%s); reconnecting", exc)
            finally:
                self.connected.clear()
                client.close()

    def _source_of_item(self, scene: str, item_id: int) -> str | None:
        try:
            if self._requests is None or not self._requests.connected:
                self._requests = OBSClient(self.obs.host, self.obs.port, self.obs.password.reveal()).connect()
            items = self._requests.request("GetSceneItemList", {"sceneName": scene}).get("sceneItems", [])
        except OBSAuthError as exc:
            report_auth_failure(exc, self.obs.address)
            return None
        except OBSConnectionError as exc:
            log.info("cannot look up scene item %s in %r: %s", item_id, scene, exc)
            return None
        for item in items:
            if item.get("sceneItemId") == item_id:
                return item.get("sourceName")
        return None

    def _work(self) -> None:
        while not self._stop.is_set():
            event = self._events.get()
            if event is None:
                return
            event_type, data = event
            try:
                request = decide(self.rules, event_type, data, self._source_of_item)
                if request is not None:
                    log.info("OBS %s -> style %s", request.reason, request.profile)
                    self.on_switch(request)
                    self.handled += 1
            except L2DError as exc:  # e.g. an unknown style in the mapping: say so, keep listening
                log.warning("OBS event %s: %s", event_type, exc)
            except Exception:  # never let one bad event end the listener
                log.exception("OBS event %s could not be handled", event_type)
