"""The window rule as pure functions (no UNet, no tensors): what each frame and each cache row reads."""

import pytest

from l2d_obs.engine.windows import (
    clip_window,
    layout_entry,
    layout_table,
    query_position,
    slot_layout,
    stream_window,
)


def test_warmup_frames_see_every_warmup_frame():
    assert stream_window(6, 3, 0) == stream_window(6, 3, 2) == (0, 1, 2)
    assert [query_position(6, 3, i) for i in range(3)] == [0, 1, 2]


def test_streaming_frames_see_warmup_plus_at_most_cap_recent_frames_ending_with_themselves():
    # L=6, Lw=3: cap 3 recent frames
    assert stream_window(6, 3, 3) == (0, 1, 2, 3)  # fill
    assert stream_window(6, 3, 5) == (0, 1, 2, 3, 4, 5)  # full
    assert stream_window(6, 3, 6) == (0, 1, 2, 4, 5, 6)  # steady: frame 3 evicted, warmup kept
    assert stream_window(6, 3, 20) == (0, 1, 2, 18, 19, 20)
    assert [query_position(6, 3, n) for n in (3, 4, 5, 6, 20)] == [3, 4, 5, 5, 5]  # the newest position


def test_training_mask_on_a_clip():
    assert clip_window(3, 6, 1) == (0, 1, 2)  # bidirectional inside the warmup
    assert clip_window(3, 6, 4) == (0, 1, 2, 3, 4)  # causal after it
    assert clip_window(3, 2, 0) == (0, 1)  # a clip shorter than the warmup


def test_slot_layouts_place_the_ring_oldest_first_after_the_warmup_slots():
    # Filling: one recent frame in slot 3 at position 3; the rest of the ring empty.
    fill = slot_layout(6, 3, 1)
    assert fill.valid == (True, True, True, True, False, False) and fill.write_slot == 3 and fill.q_position == 3
    assert fill.positions[:4] == (0, 1, 2, 3) and not fill.all_valid
    # Recent frames 0..3 appended: frame 3 overwrote frame 0 in slot 3 and is the newest.
    steady = slot_layout(6, 3, 4)
    assert steady.all_valid and steady.write_slot == 3 and steady.q_position == 5
    assert steady.positions == (0, 1, 2, 5, 3, 4)


@pytest.mark.parametrize("window,warmup", [(16, 8), (6, 3), (5, 1), (4, 3)])
def test_slot_layouts_agree_with_the_frame_windows(window, warmup):
    """Cache slots sorted by position name exactly the frames the window rule gives (at every count)."""
    cap = window - warmup
    for count in range(1, 5 * cap + 2):
        layout = slot_layout(window, warmup, count)
        frame = warmup + count - 1  # the frame that made ``count`` recent frames
        slot_frame = {s: s for s in range(warmup)}  # warmup slots hold the warmup frames
        for r in range(count):  # recent frame r (stream frame warmup + r) went to slot warmup + r % cap
            slot_frame[warmup + r % cap] = warmup + r
        seen = sorted((layout.positions[s], slot_frame[s]) for s in range(window) if layout.valid[s])
        assert [p for p, _ in seen] == list(range(len(seen)))
        assert tuple(f for _, f in seen) == stream_window(window, warmup, frame)
        assert layout.q_position == query_position(window, warmup, frame)
        assert slot_frame[layout.write_slot] == frame


@pytest.mark.parametrize("window,warmup", [(16, 8), (6, 3), (5, 1)])
def test_layouts_repeat_with_period_cap_and_the_table_covers_every_count(window, warmup):
    cap = window - warmup
    table = layout_table(window, warmup)
    assert len(table) == 2 * cap
    for count in range(1, 6 * cap):
        assert table[layout_entry(window, warmup, count)] == slot_layout(window, warmup, count)
        if count > cap:
            assert slot_layout(window, warmup, count + cap) == slot_layout(window, warmup, count)


def test_bad_windows_are_refused():
    with pytest.raises(ValueError):
        stream_window(8, 8, 0)
    with pytest.raises(ValueError):
        slot_layout(6, 3, 0)
