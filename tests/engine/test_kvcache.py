"""The KV cache object: cursors committed only after a call succeeds (warmup and streaming alike),
snapshot/restore, invariants, and buffers allocated once at static addresses (in an engine too)."""

import pytest
import torch

from l2d_obs.engine.kvcache import StepCursor, StreamKVCache
from tests.engine.helpers import make_engine, moving_frames


def _cache(steps=2, window=6, warmup=3, layers=2) -> StreamKVCache:
    cache = StreamKVCache(layers, steps, window, warmup)
    like = torch.zeros(())
    for layer in range(layers):
        cache.ensure_layer(layer, tokens=4, heads=2, head_dim=3, like=like)
    return cache


def _warm(cache: StreamKVCache) -> None:
    for step in range(cache.num_steps):
        cache.begin_warmup(step, cache.warmup)
        cache.commit()


def test_warmup_and_stream_calls_commit_only_after_they_succeed():
    cache = _cache()
    cache.begin_warmup(0, 3)
    assert cache.cursor(0) == StepCursor()  # announced, not committed
    cache.abort()  # the UNet call failed
    assert cache.cursor(0) == StepCursor() and cache.pending is None
    _warm(cache)
    assert cache.cursors == (StepCursor(3, 0), StepCursor(3, 0)) and cache.warmed(0)
    assert cache.begin_stream((0, 1)) == (1, 1)  # recent counts once each row's frame is in
    assert cache.cursors == (StepCursor(3, 0), StepCursor(3, 0))
    cache.commit()
    assert cache.cursors == (StepCursor(3, 1), StepCursor(3, 1))
    cache.begin_stream((1,))
    cache.abort()
    assert cache.cursor(1) == StepCursor(3, 1)


def test_calls_that_break_the_rules_are_refused():
    cache = _cache()
    with pytest.raises(RuntimeError, match="need 3"):
        cache.begin_stream((0,))  # before warmup
    with pytest.raises(RuntimeError, match="commit without"):
        cache.commit()
    with pytest.raises(ValueError, match="1..3 frames"):
        cache.begin_warmup(0, 4)
    _warm(cache)
    with pytest.raises(RuntimeError, match="already has cached frames"):
        cache.begin_warmup(0, 3)
    with pytest.raises(ValueError, match="different step"):
        cache.begin_stream((1, 1))
    with pytest.raises(ValueError, match="outside"):
        cache.begin_stream((2,))
    with pytest.raises(RuntimeError, match="empty"):
        StreamKVCache(1, 1, 4, 2).layer(0)


def test_snapshot_and_restore_bring_back_cursors_and_contents_in_place():
    cache = _cache()
    _warm(cache)
    k, v = cache.entry(layer=1, step=0, slot=2)
    k.fill_(3.0)
    saved = cache.snapshot()
    pointers = cache.data_ptrs()
    cache.begin_stream((0,))
    cache.entry(1, 0, 3)[0].fill_(7.0)  # what a stream call writes
    cache.commit()
    k.fill_(-1.0)
    cache.restore(saved)
    assert cache.cursors == saved.cursors and cache.cursor(0) == StepCursor(3, 0)
    assert torch.equal(cache.entry(1, 0, 2)[0], torch.full((4, 2, 3), 3.0))
    assert torch.equal(cache.entry(1, 0, 3)[0], torch.zeros(4, 2, 3))
    assert cache.data_ptrs() == pointers  # restored in place
    cache.begin_stream((0,))
    with pytest.raises(RuntimeError, match="in progress"):
        cache.snapshot()


def test_reset_keeps_the_buffers_release_frees_them_and_nbytes_counts_them():
    cache = _cache(steps=2, layers=2)
    assert cache.nbytes() == 2 * 2 * (2 * 4 * 2 * 6 * 3) * 4  # layers x (K, V) x (T, HW, heads, L, d) x fp32
    pointers = cache.data_ptrs()
    _warm(cache)
    cache.reset()
    assert cache.cursors == (StepCursor(), StepCursor()) and cache.data_ptrs() == pointers
    assert cache.ensure_layer(0, 4, 2, 3, torch.zeros(())).k.data_ptr() == pointers[0]  # same shape: reused
    cache.release()
    assert cache.nbytes() == 0 and cache.data_ptrs() == ()


def test_invariants_catch_a_corrupted_cursor():
    cache = _cache()
    cache._cursors[0] = StepCursor(warmup_len=1, recent_count=2)  # recent frames before a full warmup
    with pytest.raises(AssertionError, match="before a full warmup"):
        cache.check()
    cache._cursors[0] = StepCursor(warmup_len=4)
    with pytest.raises(AssertionError, match="at most 3"):
        cache.check()


def test_buffers_are_static_inputs_for_compile_and_cuda_graphs():
    cache = _cache()
    b = cache.layer(0)
    assert getattr(b.k, "_dynamo_static_input_type", None) == "unguarded"
    assert getattr(b.v, "_dynamo_static_input_type", None) == "unguarded"


def test_the_steady_state_never_reallocates_the_cache():
    """CUDA-graph readiness on a CPU: from the first warmup on, every push reads and writes the same
    storage (same data pointers, same bytes), across streams too."""
    engine = make_engine(2, window=6, warmup=3)
    frames = moving_frames(20)
    pointers = None
    for frame in frames:
        engine.push(frame)
        if not engine.warming_up:
            if pointers is None:
                pointers, nbytes = engine.cache.data_ptrs(), engine.cache.nbytes()
            assert engine.cache.data_ptrs() == pointers and engine.cache.nbytes() == nbytes
    assert len(pointers) == 2 * engine.cache.num_layers
    engine.flush()  # a new stream reuses the buffers
    for frame in frames[:5]:
        engine.push(frame)
    assert engine.cache.data_ptrs() == pointers
