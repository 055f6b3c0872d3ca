"""The similarity filter: a nearly static camera costs fewer model runs at the same output rate; a
moving one gives exactly the output of the unfiltered engine; a skipped frame never touches the cache."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from l2d_obs.engine.stream import EngineSettings, StreamEngine, frame_similarity
from l2d_obs.engine.tiny import build_tiny_components
from l2d_obs.frames import Frame
from l2d_obs.profiles import load_profile_file, load_profile
from tests.engine.helpers import make_engine, moving_frames


def _engine(filter_on: bool, max_skips: int = 3) -> tuple[StreamEngine, list[int]]:
    settings = replace(make_engine(2).settings, similarity_filter=filter_on, similarity_threshold=0.98,
                       max_skips=max_skips)
    engine = StreamEngine(build_tiny_components(0, depth=True), settings)
    calls: list[int] = []
    engine.denoiser.call.observer = lambda ctx: calls.append(1)
    return engine, calls


def _static_frames(n: int) -> list[Frame]:
    still = moving_frames(1)[0].pixels
    rng = np.random.default_rng(1)
    # a still camera with a little sensor noise (+-1 grey level)
    return [Frame(pixels=np.clip(still.astype(int) + rng.integers(-1, 2, still.shape), 0, 255).astype(np.uint8), index=i)
            for i in range(n)]


def test_static_clip_runs_at_least_twice_fewer_pushes_at_the_same_output_rate():
    frames = _static_frames(40)
    counts = {}
    for on in (False, True):
        engine, calls = _engine(on)
        per_push = [len(engine.push(f)) for f in frames]
        counts[on] = (per_push, len(calls), engine.stats)
    off_out, off_calls, _ = counts[False]
    on_out, on_calls, stats = counts[True]
    steady = slice(10, 40)  # after warmup (8) and the T-1 frame of pipeline fill
    assert off_out[steady] == on_out[steady] == [1] * 30  # one output per camera frame either way
    stream_off, stream_on = off_calls - 2, on_calls - 2  # minus the T warmup calls
    assert stream_on * 2 <= stream_off, (stream_on, stream_off)
    assert stats.skipped >= 20 and stats.frames_in == 40


def test_moving_clip_output_is_identical_with_the_filter_on_or_off():
    frames = moving_frames(40)
    assert max(frame_similarity(a.pixels, b.pixels) for a, b in zip(frames, frames[1:])) < 0.98
    outputs = {}
    for on in (False, True):
        engine, _ = _engine(on)
        outputs[on] = [o for f in frames for o in engine.push(f)] + engine.flush()
        assert engine.stats.skipped == 0
    assert [o.index for o in outputs[True]] == [o.index for o in outputs[False]] == list(range(40))
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(outputs[True], outputs[False]))


def test_a_skipped_frame_never_writes_the_kv_cache_and_repeats_the_last_output():
    engine, calls = _engine(True, max_skips=2)
    frames = _static_frames(14)
    for f in frames[:10]:  # warmup (8), fill (frame 8), first stream output (frame 9)
        engine.push(f)
    assert engine._last_output is not None and engine._skips == 0
    saved = engine.cache.snapshot()
    before, last, number = len(calls), engine._last_output, engine._next_number
    out = engine.push(frames[10])
    assert engine.stats.skipped == 1 and len(calls) == before  # nothing of the model ran
    assert [o.index for o in out] == [10] and np.array_equal(out[0].pixels, last.pixels)
    now = engine.cache.snapshot()
    assert now.cursors == saved.cursors
    assert engine._next_number == number
    for (k, v), (k_now, v_now) in zip(saved.buffers, now.buffers):
        assert torch.equal(k, k_now) and torch.equal(v, v_now)
    # at most max_skips in a row: then a frame is pushed anyway
    engine.push(frames[11])
    assert engine._skips == 2
    engine.push(frames[12])
    assert engine._skips == 0 and len(calls) == before + 1


def test_profile_keys_and_their_ranges(tmp_path):
    text = load_profile("tiny").source_path.read_text() + "\n[engine]\nsimilarity_filter = true\nsimilarity_threshold = 0.95\nmax_skips = 4\n"
    path = tmp_path / "still.toml"
    path.write_text(text)
    profile = load_profile_file(path)
    settings = EngineSettings.from_profile(profile)
    assert settings.similarity_filter and settings.similarity_threshold == 0.95 and settings.max_skips == 4
    path.write_text(text.replace("max_skips = 4", "max_skips = 0"))
    with pytest.raises(Exception, match="engine.max_skips"):
        load_profile_file(path)
    path.write_text(text.replace("0.95", "1.5"))
    with pytest.raises(Exception, match="engine.similarity_threshold"):
        load_profile_file(path)
    assert not EngineSettings.from_profile(load_profile("tiny")).similarity_filter  # off unless asked for
