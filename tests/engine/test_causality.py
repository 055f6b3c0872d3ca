"""No frame sees the future (after warmup); warmup is bidirectional; every part of the cache matters."""

import numpy as np
import torch

from l2d_obs.frames import Frame
from tests.engine.helpers import make_engine, moving_frames, rel_err


def _outputs(engine, frames):
    return [o for f in frames for o in engine.push(f)] + engine.flush()


def _changed(frame: Frame) -> Frame:
    return frame.with_pixels(255 - frame.pixels)


def test_changing_a_future_frame_leaves_past_outputs_bit_identical():
    frames = moving_frames(30)
    k = 20
    altered = frames[: k + 1] + [_changed(frames[k + 1])] + frames[k + 2 :]
    for steps in (1, 3):  # with T=3, frames k and k+1 share UNet calls in the stream batch
        base = _outputs(make_engine(steps), frames)
        other = _outputs(make_engine(steps), altered)
        for i in range(k + 1):
            assert np.array_equal(base[i].pixels, other[i].pixels), f"T={steps}: output {i} saw frame {k + 1}"
        assert not np.array_equal(base[k + 1].pixels, other[k + 1].pixels)


def test_latents_of_past_frames_are_bit_identical_too():
    frames = moving_frames(26)
    k = 12
    altered = frames[: k + 1] + [_changed(f) for f in frames[k + 1 :]]
    engine = make_engine(4)
    base = engine.stream_latents(frames)
    other = engine.stream_latents(altered)
    assert all(torch.equal(base[i], other[i]) for i in range(k + 1))


def test_warmup_is_bidirectional():
    frames = moving_frames(12)
    altered = frames[:6] + [_changed(frames[6])] + frames[7:]
    engine = make_engine(2)
    base = engine.stream_latents(frames)
    other = engine.stream_latents(altered)
    # frame 2 is a warmup frame and attends to warmup frame 6, which comes later
    assert rel_err(other[2], base[2]) > 1e-4


def test_previous_frame_changes_the_current_output():
    frames = moving_frames(30)
    altered = frames[:24] + [_changed(frames[24])] + frames[25:]
    engine = make_engine(2)
    base = engine.stream_latents(frames)
    other = engine.stream_latents(altered)
    assert rel_err(other[25], base[25]) > 1e-4  # frame 25 attends to frame 24


def test_warmup_frames_shape_every_later_frame():
    frames = moving_frames(40)
    engine = make_engine(1, window=16, warmup=8)
    base = engine.stream_latents(frames)
    altered_warm = frames[:3] + [_changed(frames[3])] + frames[4:]
    other = engine.stream_latents(altered_warm)
    assert rel_err(other[39], base[39]) > 1e-4  # warmup frame 3 still shapes frame 39


def test_perturbing_a_cached_entry_changes_the_next_output():
    frames = moving_frames(24)
    engine = make_engine(1)
    reference = [o for f in frames[:20] for o in engine.push(f)]
    assert len(reference) == 20
    cache = engine.cache
    saved = cache.snapshot()

    def next_output(perturb):
        cache.restore(saved)  # both pushes see the same cache state
        number = engine._next_number  # the frame number drives its (fresh) noise
        if perturb is not None:
            perturb()
        out = engine.push(frames[20])[0].pixels
        engine._next_number = number
        return out

    clean = next_output(None)

    def bump_warmup_entry():
        k, _ = cache.entry(layer=0, step=0, slot=2)
        k += 1.0

    def bump_recent_entry():
        k, _ = cache.entry(layer=cache.num_layers - 1, step=0, slot=9)
        k += 1.0

    assert not np.array_equal(next_output(bump_warmup_entry), clean)
    assert not np.array_equal(next_output(bump_recent_entry), clean)
    assert np.array_equal(next_output(None), clean)
