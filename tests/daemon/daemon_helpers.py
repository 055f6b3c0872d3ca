"""Shared helpers for the daemon tests."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from l2d_obs.frames import Frame
from l2d_obs.profiles import Profile, load_profile
from l2d_obs.sinks.base import Sink

REPO = Path(__file__).resolve().parents[2]


def tiny() -> Profile:
    return load_profile("tiny")


def real_engine_factory(profile: Profile):
    from l2d_obs.factory import build_engine

    return build_engine(profile, device="cpu")


class PassThroughEngine:
    """Returns each input frame unchanged. Only for tests of transport timing (OBS latency), where the
    model's own speed is measured elsewhere and would only blur a publish->visible measurement."""

    def __init__(self, profile: Profile) -> None:
        self.width, self.height = profile.width, profile.height

    def push(self, frame: Frame) -> list[Frame]:
        return [frame]

    def flush(self) -> list[Frame]:
        return []

    def reset(self) -> None:
        pass


class SlowEngine:
    """The real engine made deliberately slow (sleep after each push), to force frame dropping."""

    def __init__(self, inner, delay: float) -> None:
        self.inner, self.delay = inner, delay
        self.width, self.height = inner.width, inner.height
        self.pushed: list[int] = []

    def push(self, frame: Frame) -> list[Frame]:
        self.pushed.append(frame.index)
        out = self.inner.push(frame)
        time.sleep(self.delay)
        return out

    def flush(self) -> list[Frame]:
        return self.inner.flush()

    def reset(self) -> None:
        self.inner.reset()


class RecordingSink(Sink):
    """Keeps (publish time, frame) for every write."""

    def __init__(self, keep_pixels: bool = True) -> None:
        self.keep_pixels = keep_pixels
        self.records: list[tuple[float, Frame]] = []
        self.opened_with: tuple[int, int, float] | None = None
        self.closed = False
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return "recording"

    def open(self, width: int, height: int, fps: float) -> None:
        self.opened_with = (width, height, fps)

    def write(self, frame: Frame) -> None:
        if not self.keep_pixels:
            frame = frame.with_pixels(np.zeros((1, 1, 3), np.uint8))
        with self._lock:
            self.records.append((time.monotonic(), frame))

    def close(self) -> None:
        self.closed = True


def run_in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            result["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, result


def wait_until(cond: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return cond()


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("L2D_OBS_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


# What the `l2d-obs` console script runs (`python -m l2d_obs.cli` would import cli.py twice).
CLI = [sys.executable, "-c", "import sys; from l2d_obs.cli import main; sys.exit(main())"]


def cli(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    """Start `l2d-obs ARGS` as a separate process, as a user would run it."""
    return subprocess.Popen([*CLI, *args], env=env or cli_env(), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def cli_run(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env=env or cli_env(), cwd=REPO, capture_output=True, text=True, timeout=timeout)


def write_test_video(path: Path, frames: int, size=(96, 64), fps: float = 30.0) -> list[np.ndarray]:
    """An MJPG .avi whose frames differ a lot from each other; returns the RGB frames as read back."""
    import cv2

    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for i in range(frames):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, :, 0] = (i * 37) % 256
        img[:, :, 1] = (i * 91 + 40) % 256
        cv2.rectangle(img, (i * 5 % w, 10), (i * 5 % w + 20, 40), (255, 255, 255), -1)
        writer.write(img)
    writer.release()
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return out


def playable_frames(path) -> int:
    """How many frames a video file plays (it must open)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} does not open as a video"
    count = 0
    while cap.read()[0]:
        count += 1
    return count
