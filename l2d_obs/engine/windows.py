"""Live2Diff's window rule as pure functions: which frames (or cache slots) a query reads, at which
positions. No tensors, no model: the cache, the reference oracle, the training mask and the
benchmark's recompute baseline all take their windows from here (DESIGN §3).

Notation: window ``L``, warmup ``Lw``, recent capacity ``cap = L - Lw``.

- Warmup (frames 0..Lw-1 of a stream): bidirectional over the warmup frames, positions 0..Lw-1.
- Streaming frame n >= Lw: the Lw warmup frames (positions 0..Lw-1) plus the most recent non-warmup
  frames up to and including n, at most ``cap`` of them, at positions Lw.. in temporal order.
- The cache holds them in slots: 0..Lw-1 for the warmup frames (never evicted), Lw..L-1 a ring of the
  recent ones (recent frame r goes to slot Lw + r % cap, overwriting the oldest).
"""

from __future__ import annotations

from dataclasses import dataclass


def check_window(window: int, warmup: int) -> None:
    if not 1 <= warmup < window:
        raise ValueError(f"need 1 <= warmup < window, got warmup={warmup} window={window}")


def stream_window(window: int, warmup: int, frame: int) -> tuple[int, ...]:
    """Frame indices frame ``frame`` of a stream attends to, in position order (position = place in
    the tuple). A warmup frame sees every warmup frame; a later one the warmup frames and its recent ones."""
    check_window(window, warmup)
    if frame < warmup:
        return tuple(range(warmup))
    cap = window - warmup
    return tuple(range(warmup)) + tuple(range(max(warmup, frame - cap + 1), frame + 1))


def query_position(window: int, warmup: int, frame: int) -> int:
    """PE position of frame ``frame``'s own query: its index in warmup, the newest slot after."""
    return frame if frame < warmup else len(stream_window(window, warmup, frame)) - 1


def clip_window(warmup: int, num_frames: int, frame: int) -> tuple[int, ...]:
    """The training mask on one clip of ``num_frames`` (paper Fig. 1d): frames < Lw see all of < Lw;
    later frames see < Lw and Lw..frame. Positions are the frames' own indices."""
    keys = tuple(range(min(warmup, num_frames)))
    return keys + (tuple(range(warmup, frame + 1)) if frame >= warmup else ())


@dataclass(frozen=True)
class SlotLayout:
    """What a streaming row reads and writes in its step's cache, after its own frame is appended."""

    positions: tuple[int, ...]  # (L,) PE position of each slot
    valid: tuple[bool, ...]  # (L,) which slots hold a frame
    write_slot: int  # where the row's new K/V goes
    q_position: int  # PE position of the row's query (the newest)

    @property
    def all_valid(self) -> bool:
        return all(self.valid)


def slot_layout(window: int, warmup: int, recent_after: int) -> SlotLayout:
    """The slot layout of a step whose cache holds ``recent_after`` (>= 1) recent frames once the
    row's frame is in. Warmup slots keep positions 0..Lw-1; the recent ones get Lw.. oldest first."""
    check_window(window, warmup)
    if recent_after < 1:
        raise ValueError(f"a streaming row appends a frame: recent_after >= 1, got {recent_after}")
    cap = window - warmup
    n = min(recent_after, cap)
    oldest = recent_after - n  # recent-frame number of the oldest one still in the window
    positions = list(range(window))
    valid = [True] * warmup + [False] * cap
    for r in range(oldest, recent_after):
        slot = warmup + r % cap
        positions[slot] = warmup + (r - oldest)
        valid[slot] = True
    return SlotLayout(tuple(positions), tuple(valid), warmup + (recent_after - 1) % cap, warmup + n - 1)


def layout_period(window: int, warmup: int) -> int:
    """Slot layouts repeat with this period once the ring is full (see ``layout_entry``)."""
    return window - warmup


def layout_entry(window: int, warmup: int, recent_after: int) -> int:
    """Index of ``recent_after``'s layout in a table of ``2 * cap`` distinct layouts: the first ``cap``
    while the ring fills, then ``cap`` that repeat (a ring position and a full ring give the same
    positions every ``cap`` frames)."""
    cap = layout_period(window, warmup)
    if recent_after <= 2 * cap:
        return recent_after - 1
    return cap + (recent_after - cap - 1) % cap


def layout_table(window: int, warmup: int) -> list[SlotLayout]:
    """Every distinct slot layout, indexed by ``layout_entry``."""
    return [slot_layout(window, warmup, c) for c in range(1, 2 * layout_period(window, warmup) + 1)]
