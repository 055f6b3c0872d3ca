"""The daemon: source -> engine -> sinks on three threads, plus status and control.

    capture thread --LatestSlot--> engine thread --LatestSlot--> output thread --> sinks
                     (BoundedQueue for files)      (BoundedQueue for files)

- Live sources hand over through one-item slots where the newest frame wins: a slow engine drops input
  frames instead of queueing them, so latency stays bounded. Files are never dropped (they play slower).
- The capture thread fits each camera frame to the engine's size; the engine thread only runs the model.
- For a live source the output thread runs a steady clock at the source's frame rate: each tick publishes
  the newest finished frame, or repeats the last one when nothing new is ready (slow model, OBS gone), so
  a virtual camera or OBS sees an even cadence and never a stall. A file's frames go out once each.
- A lost source (OBS quit, camera unplugged) is reopened with backoff by the capture thread; nothing
  else notices except the status line.
- Style switches are prepared on a helper thread while the current style keeps running, and the
  engine thread applies them between two frames (one path for every engine: ``engines``).
- Bypass (control API, `l2d-obs bypass on`): the engine is not called; each camera frame goes out as
  it is, fitted to the output size, so sinks need no reopen. Turning it off restarts the engine's
  stream warmed from the newest camera frames (its cache held frames from before the gap).

Modules, one job each: ``core`` (lifecycle, phases, public API), ``stages`` (the capture, engine and
output loops, bypass), ``switching`` (requests, the switch worker, the pending switch), ``engines``
(the engine protocol and its adapters), ``stats`` (counters, status, the status line).
"""

from .core import Daemon, DaemonConfig
from .engines import (BuiltEngine, EngineFactory, EngineLike, InPlaceEngine, RebuildingEngine,
                      default_engine_factory, switchable)
from .stages import RECENT_CAMERA_FRAMES, CameraFrame, Stages
from .stats import RateMeter, Stats
from .switching import PendingSwitch, StyleSwitcher

__all__ = [
    "BuiltEngine", "CameraFrame", "Daemon", "DaemonConfig", "EngineFactory", "EngineLike", "InPlaceEngine",
    "PendingSwitch", "RECENT_CAMERA_FRAMES", "RateMeter", "RebuildingEngine", "Stages", "Stats",
    "StyleSwitcher", "default_engine_factory", "switchable",
]
