"""Style hot swap inside the engine: prepare elsewhere, re-warm from recent frames, no gap."""

import numpy as np
import pytest

from l2d_obs.engine.stream import EngineSettings
from l2d_obs.engine.tiny import build_tiny_components
from l2d_obs.errors import EngineError
from tests.engine.helpers import make_engine, moving_frames


def _settings(engine, **changes) -> EngineSettings:
    values = dict(engine.settings.__dict__)
    values.update(changes)
    return EngineSettings(**values)


def test_switch_equals_a_fresh_engine_warmed_on_the_recent_frames():
    frames = moving_frames(30)
    engine = make_engine(2)
    for f in frames[:20]:
        engine.push(f)
    new = engine.prepare(build_tiny_components(5), _settings(engine, prompt="another style", seed=3), name="other")
    first = engine.apply_style(new)
    assert [f.index for f in first] == [19]  # the newest frame, already in the new style
    after = first + [o for f in frames[20:] for o in engine.push(f)] + engine.flush()

    fresh = make_engine(2, weights_seed=5, seed=3)
    fresh.apply_style(fresh.prepare(build_tiny_components(5), _settings(fresh, prompt="another style", seed=3)))
    expected = [o for f in frames[12:] for o in fresh.push(f)] + fresh.flush()
    expected = [o for o in expected if o.index >= 19]
    assert [o.index for o in after] == [o.index for o in expected] == list(range(19, 30))
    for a, b in zip(after, expected):
        assert np.array_equal(a.pixels, b.pixels)


def test_switch_changes_the_picture_and_can_change_window_and_steps():
    frames = moving_frames(24)
    engine = make_engine(2)
    before = [o for f in frames[:16] for o in engine.push(f)]
    style = engine.prepare(build_tiny_components(1), _settings(engine, t_index_list=(25, 35, 45), window=12, warmup=4))
    first = engine.apply_style(style)
    assert len(first) == 1 and first[0].index == 15
    assert not np.array_equal(first[0].pixels, before[-1].pixels)
    after = [o for f in frames[16:] for o in engine.push(f)] + engine.flush()
    assert [o.index for o in after] == list(range(16, 24))
    assert engine.context.window == 12 and engine.context.warmup == 4 and engine.stats.switches == 1


def test_switch_before_enough_frames_waits_for_warmup_without_losing_frames():
    frames = moving_frames(12)
    engine = make_engine(1)
    for f in frames[:3]:
        engine.push(f)
    assert engine.apply_style(engine.prepare(build_tiny_components(1), engine.settings)) == []
    outputs = [o for f in frames[3:] for o in engine.push(f)] + engine.flush()
    assert [o.index for o in outputs] == list(range(12))


def test_a_style_whose_window_does_not_fit_is_refused_at_prepare():
    engine = make_engine(1)
    with pytest.raises(EngineError, match="window 40 is longer than the 32 positions"):
        engine.prepare(build_tiny_components(1), _settings(engine, window=40))
