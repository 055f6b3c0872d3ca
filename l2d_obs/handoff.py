"""Hand-offs between the daemon's threads.

``LatestSlot`` holds one item: a put replaces what is there (and counts it as dropped), so a slow consumer
always gets the newest frame and never a backlog — latency stays bounded. ``BoundedQueue`` blocks the
producer instead (for files, where every frame must come out). Both can be closed: a consumer then gets
what is left and finally ``CLOSED``.
"""

from __future__ import annotations

import collections
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class _Closed:
    def __repr__(self) -> str:
        return "CLOSED"


CLOSED = _Closed()


class LatestSlot(Generic[T]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._cond:
            if self._closed:  # shutting down: the item is dropped, and counted as such
                self.dropped += 1
                return
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify_all()

    def get(self, timeout: float) -> T | _Closed | None:
        """The newest item, CLOSED when closed and empty, or None on timeout."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            item, self._item = self._item, None
            if item is None and self._closed:
                return CLOSED
            return item

    def peek(self) -> T | None:
        """The item waiting now, left in place (None if none); a newer one may replace it before ``get``."""
        with self._cond:
            return self._item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        return 0 if self._item is None else 1


class BoundedQueue(Generic[T]):
    def __init__(self, capacity: int = 2) -> None:
        self._cond = threading.Condition()
        self._items: collections.deque[T] = collections.deque()
        self._capacity = capacity
        self._closed = False
        self.dropped = 0  # never drops; same attribute as LatestSlot for the stats

    def put(self, item: T, timeout: float | None = None) -> bool:
        """Wait for room; False if the queue was closed (or the wait timed out) before it was added."""
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self._items) < self._capacity or self._closed, timeout)
            if self._closed or not ok:
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout: float) -> T | _Closed | None:
        with self._cond:
            self._cond.wait_for(lambda: bool(self._items) or self._closed, timeout)
            if self._items:
                item = self._items.popleft()
                self._cond.notify_all()
                return item
            return CLOSED if self._closed else None

    def peek(self) -> T | None:
        """The next item ``get`` returns, left in place (None if none is waiting)."""
        with self._cond:
            return self._items[0] if self._items else None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)
