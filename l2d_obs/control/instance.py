"""One daemon per control endpoint (the state folder holding ``control.json``).

``start`` takes an exclusive ``flock`` on ``<state dir>/daemon.lock`` before anything slow and before
it touches OBS or an output, and keeps it for its whole life. The kernel drops the lock when the
process dies, however it dies, so a stale lock from a crashed daemon never blocks the next start; its
leftover ``control.json`` is simply overwritten by the new owner. The lock file also records the
owner's PID so a refused start can name it.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from ..paths import state_dir
from ..errors import ControlError


def lock_file() -> Path:
    return state_dir() / "daemon.lock"


class InstanceLock:
    """Held from ``acquire`` until ``release`` or process exit."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or lock_file()
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "InstanceLock":
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = owner_pid(self.path)
            who = f"pid {pid}" if pid else "another process"
            raise ControlError(
                f"another l2d-obs daemon is running ({who}) with state folder {self.path.parent}; "
                "see it with 'l2d-obs status', stop it with 'l2d-obs stop', or give this one its own "
                "L2D_STATE_DIR"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid()}).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:  # empty it first: a reader never sees our PID on a lock nobody holds
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> "InstanceLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def owner_pid(path: Path | None = None) -> int | None:
    """The PID written by the lock's holder, if any."""
    try:
        return int(json.loads((path or lock_file()).read_text() or "{}").get("pid") or 0) or None
    except (OSError, ValueError, TypeError, AttributeError):
        return None
