"""The next frame's encode started during the current push (``push(frame, upcoming=...)``, on a second
CUDA stream with the ``overlap`` option): outputs are identical with or without it, whatever the
caller does with the prefetched frame (pushes it, drops it, switches style, resets, or the similarity
filter skips it); a steady-state push still moves one frame up and one down; the option resolves
like the other speed options."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from l2d_obs.bench.transfers import TransferAudit
from l2d_obs.engine.accel import Accelerations
from l2d_obs.engine.stream import StreamEngine
from l2d_obs.engine.tiny import build_tiny_components
from l2d_obs.errors import ConfigError
from l2d_obs.frames import Frame
from tests.engine.helpers import make_engine, moving_frames


def _stream(engine: StreamEngine, frames: list[Frame], lookahead: bool, drop_every: int = 0) -> list[Frame]:
    """Push ``frames`` in order; with ``lookahead``, each push also gets the next frame. With
    ``drop_every``, every n-th upcoming frame offered is a different one, never pushed (as when a newer
    camera frame replaces the one waiting in the daemon's inbox)."""
    outputs = []
    for i, frame in enumerate(frames):
        upcoming = frames[i + 1] if lookahead and i + 1 < len(frames) else None
        if upcoming is not None and drop_every and i % drop_every == 0:
            upcoming = Frame(pixels=upcoming.pixels[::-1].copy(), index=upcoming.index)  # replaced before it was taken
        outputs += engine.push(frame, upcoming=upcoming)
    return outputs + engine.flush()


def _same(a: list[Frame], b: list[Frame]) -> bool:
    return [f.index for f in a] == [f.index for f in b] and all(np.array_equal(x.pixels, y.pixels) for x, y in zip(a, b))


@pytest.mark.parametrize("steps, pipelined, noise", [(2, True, "fresh"), (3, True, "fixed"), (2, False, "fresh")])
def test_outputs_are_identical_with_and_without_the_next_frame(steps, pipelined, noise):
    frames = moving_frames(30)
    plain = _stream(make_engine(steps, pipelined=pipelined, noise=noise), frames, lookahead=False)
    ahead = _stream(make_engine(steps, pipelined=pipelined, noise=noise), frames, lookahead=True)
    dropped = _stream(make_engine(steps, pipelined=pipelined, noise=noise), frames, lookahead=True, drop_every=3)
    assert len(plain) == 30
    assert _same(ahead, plain)
    assert _same(dropped, plain)  # a prefetched frame never pushed shifts neither noise nor cache


def test_the_prefetched_encode_is_used_and_a_mismatch_is_encoded_again():
    engine = make_engine(2)
    frames = moving_frames(12)
    encodes = []
    original = engine._encode_frame
    engine._encode_frame = lambda frame: (encodes.append(frame.index), original(frame))[1]
    for i, frame in enumerate(frames[:10]):
        engine.push(frame, upcoming=frames[i + 1])
    assert encodes == list(range(11))  # each frame once: frame 0 by its own push, the rest ahead of theirs
    encodes.clear()
    engine.push(Frame(pixels=frames[10].pixels.copy(), index=10))  # equal pixels, another array: not the one prefetched
    assert encodes == [10]


def test_a_style_switch_a_reset_or_a_skip_drops_the_prefetched_frame():
    frames = moving_frames(20)
    engine = make_engine(2)
    for i, frame in enumerate(frames[:10]):
        engine.push(frame, upcoming=frames[i + 1])
    assert engine._prefetched is not None
    engine.reset()
    assert engine._prefetched is None
    engine.push(frames[0], upcoming=frames[1])
    engine.apply_style(engine.style)  # the encode belonged to the style before the switch
    assert engine._prefetched is None

    still = moving_frames(1)[0]
    filtered = StreamEngine(build_tiny_components(0, depth=True),
                            replace(make_engine(2).settings, similarity_filter=True, similarity_threshold=0.9))
    for i in range(12):
        filtered.push(Frame(pixels=still.pixels, index=i), upcoming=Frame(pixels=still.pixels, index=i + 1))
    assert filtered.stats.skipped > 0 and filtered._prefetched is None


def test_wrong_sized_upcoming_frame_is_left_to_its_own_push():
    engine = make_engine(2)
    frames = moving_frames(10)
    big = Frame(pixels=np.zeros((48, 48, 3), np.uint8), index=99)
    engine.push(frames[0], upcoming=big)  # no error here: it is not this push's frame
    assert engine._prefetched is None


def test_steady_state_push_with_the_next_frame_moves_one_frame_each_way():
    settings = make_engine(2, noise="fixed").settings
    engine = StreamEngine(build_tiny_components(0, depth=True), settings, device="meta", dtype=torch.float32,
                          accel=Accelerations(overlap=True))
    frames = moving_frames(30)
    with torch.no_grad():
        with TransferAudit(strict=False):
            for i in range(20):
                engine.push(frames[i], upcoming=frames[i + 1])
        for i in range(20, 24):
            with TransferAudit(strict=True) as audit:
                outputs = engine.push(frames[i], upcoming=frames[i + 1])
            assert len(outputs) == 1
            assert (audit.counts.uploads, audit.counts.downloads) == (1, 1)  # the next frame up, this output down


def test_overlap_resolves_like_the_other_speed_options():
    assert Accelerations.resolve("cuda").overlap and not Accelerations.resolve("cpu").overlap
    assert not Accelerations.resolve("cuda", overlap=False).overlap
    assert "overlap" in Accelerations.resolve("cuda").describe()
    with pytest.raises(ConfigError, match="overlap .*second CUDA stream.*turn overlap off"):
        Accelerations.resolve("cpu", overlap=True)
    assert make_engine(2).overlaps is False
