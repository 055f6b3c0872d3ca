from __future__ import annotations

import threading
import time

from l2d_obs.handoff import CLOSED, BoundedQueue, LatestSlot


def test_latest_slot_keeps_only_the_newest_and_counts_drops():
    slot: LatestSlot[int] = LatestSlot()
    for i in range(5):
        slot.put(i)
    assert slot.get(0.01) == 4
    assert slot.dropped == 4
    assert slot.get(0.01) is None  # empty: timeout
    slot.put(7)
    slot.close()
    assert slot.get(0.01) == 7  # what is left comes out first
    assert slot.get(0.01) is CLOSED


def test_latest_slot_wakes_a_waiting_consumer():
    slot: LatestSlot[str] = LatestSlot()
    threading.Timer(0.05, slot.put, args=("x",)).start()
    t0 = time.monotonic()
    assert slot.get(2.0) == "x"
    assert time.monotonic() - t0 < 1.0


def test_bounded_queue_blocks_instead_of_dropping():
    q: BoundedQueue[int] = BoundedQueue(2)
    assert q.put(1) and q.put(2)
    assert not q.put(3, timeout=0.05)  # full: the producer waits
    got = []
    threading.Timer(0.05, lambda: got.append(q.get(1))).start()
    assert q.put(3, timeout=2.0)
    assert got == [1]
    q.close()
    assert [q.get(0.01), q.get(0.01), q.get(0.01)] == [2, 3, CLOSED]
    assert q.dropped == 0


def test_peek_shows_the_waiting_item_without_taking_it():
    slot: LatestSlot[int] = LatestSlot()
    assert slot.peek() is None
    slot.put(1)
    assert slot.peek() == 1 and len(slot) == 1
    slot.put(2)  # a newer frame replaces the one peeked at
    assert slot.peek() == 2 and slot.get(0.01) == 2 and slot.peek() is None
    queue: BoundedQueue[int] = BoundedQueue(2)
    assert queue.peek() is None
    queue.put(1)
    queue.put(2)
    assert queue.peek() == 1 and queue.get(0.01) == 1 and queue.peek() == 2
