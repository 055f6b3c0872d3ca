"""The same trained weights run in different ways over the same frames, for ablations.

    live2diff   the product: warmup, then uni-directional attention over the KV cache (stream batch)
    per-frame   every frame on its own: temporal attention sees only the frame itself (a warmup of
                one frame, the cache dropped after each frame) - per-frame image translation
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..engine.stream import StreamEngine
from ..frames import Frame
from ..imageops import fit

VARIANTS = ("live2diff", "per-frame")


def _fitted(engine: StreamEngine, frames: list[np.ndarray]) -> list[Frame]:
    return [Frame(fit(f, engine.width, engine.height), i) for i, f in enumerate(frames)]


def run_variant(engine: StreamEngine, frames: list[np.ndarray], variant: str) -> list[np.ndarray]:
    """Outputs (at the engine's resolution) for ``frames`` in input order. Leaves the engine reset."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} (known: {', '.join(VARIANTS)})")
    inputs = _fitted(engine, frames)
    outputs: list[Frame] = []
    if variant == "live2diff":
        engine.reset()
        for frame in inputs:
            outputs += engine.push(frame)
        outputs += engine.flush()
    else:
        original = engine.style
        settings = replace(original.settings, warmup=1)
        engine.reset()  # nothing to re-warm from: the switch below must not push old frames
        engine.apply_style(engine.prepare(original.components, settings, original.name))
        try:
            for frame in inputs:
                engine.reset()
                outputs += engine.push(frame)  # a warmup of one frame: done at once, attending to itself
                outputs += engine.flush()
        finally:
            engine.apply_style(original)
            engine.reset()
    if [f.index for f in outputs] != list(range(len(inputs))):
        raise RuntimeError("the engine returned frames out of order")  # an invariant, never expected
    return [f.pixels for f in outputs]
