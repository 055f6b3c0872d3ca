"""The same trained weights run in different ways over the same frames, for ablations.

    live2diff      the product: warmup, then uni-directional attention over the KV cache (stream batch)
    per-frame      every frame on its own: temporal attention sees only the frame itself (a warmup of
                   one frame, the cache dropped after each frame) - per-frame image translation
    no-warmup      a warmup of one frame, then streaming: the first frame is the only anchor, the rest
                   of the window is the ring of recent frames
    window-8/16/24 streaming with an attention window of 8, 16 or 24 frames; the profile's warmup is
                   kept when it is shorter than the window, else it becomes window // 2. A window longer
                   than the motion modules' positional table is an EngineError
    bidirectional  offline, non-causal: the clip is cut into near-equal chunks that the engine denoises
                   in warmup mode, where every frame attends to every frame of its chunk (past and
                   future) - an upper bound for temporal consistency, not something a live stream can do

Every variant keeps the profile's prompt, steps, noise and weights; only the attention schedule changes.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
import torch

from ..engine.stream import EngineSettings, StreamEngine
from ..errors import ConfigError, EngineError
from ..frames import Frame
from ..imageops import fit

WINDOW_VARIANTS = {"window-8": 8, "window-16": 16, "window-24": 24}
VARIANTS = ("live2diff", "per-frame", "no-warmup", *WINDOW_VARIANTS, "bidirectional")


@dataclass(frozen=True)
class VariantRun:
    """What one variant produced, and how long its frames took (style switches not included)."""

    variant: str
    outputs: list[np.ndarray]  # at the engine's resolution, in input order
    seconds: float  # wall time of pushing and flushing the frames (device synchronised)


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant {variant!r} (known: {', '.join(VARIANTS)})")
    return variant


def positions_known(engine: StreamEngine) -> int:
    """Length of the motion modules' positional table: the longest window the weights can take."""
    from ..engine.temporal import motion_transformers

    return min(int(block.pos_embed.pe.shape[1]) for t in motion_transformers(engine.components.unet)
               for block in t.transformer_blocks)


def variant_settings(engine: StreamEngine, variant: str, frames: int | None = None) -> EngineSettings | None:
    """The engine settings a variant runs with (None: the engine's own, unchanged).

    ``frames`` (the clip length) sizes the bidirectional chunks. Raises EngineError when a window
    variant needs more positions than the motion modules know.
    """
    check_variant(variant)
    base = engine.style.settings
    if variant == "live2diff":
        return None
    if variant in ("per-frame", "no-warmup"):
        return replace(base, warmup=1)
    known = positions_known(engine)
    if variant in WINDOW_VARIANTS:
        window = WINDOW_VARIANTS[variant]
        if window > known:
            raise EngineError(
                f"variant {variant} needs a window of {window} frames but the motion modules of this model "
                f"know only {known} positions; use a window variant of at most {known} frames"
            )
        warmup = base.warmup if base.warmup < window else window // 2
        return replace(base, window=window, warmup=warmup)
    # bidirectional: the engine's warmup must be shorter than its window, and the window at most the
    # positional table, so a chunk holds at most known - 1 frames. Equal chunks: no short last one.
    if known < 2:
        raise EngineError(f"the motion modules know {known} position(s); bidirectional chunks need at least 2")
    longest = known - 1
    n = max(1, frames or longest)
    chunk = math.ceil(n / math.ceil(n / longest))
    return replace(base, window=known, warmup=chunk)


def bidirectional_chunks(count: int, chunk: int) -> list[range]:
    """Consecutive frame ranges of at most ``chunk`` frames covering 0..count-1."""
    return [range(start, min(start + chunk, count)) for start in range(0, count, chunk)]


def _fitted(engine: StreamEngine, frames: list[np.ndarray]) -> list[Frame]:
    return [Frame(fit(f, engine.width, engine.height), i) for i, f in enumerate(frames)]


@contextlib.contextmanager
def _using(engine: StreamEngine, settings: EngineSettings | None) -> Iterator[None]:
    """Run the block with ``settings`` (same components and name), then restore the original style."""
    if settings is None:
        engine.reset()
        try:
            yield
        finally:
            engine.reset()
        return
    original = engine.style
    engine.reset()  # nothing to re-warm from: the switch below must not push old frames
    engine.apply_style(engine.prepare(original.components, settings, original.name))
    try:
        yield
    finally:
        engine.reset()
        engine.apply_style(original)
        engine.reset()


def _sync(engine: StreamEngine) -> None:
    if engine.device.type == "cuda":
        torch.cuda.synchronize(engine.device)
    elif engine.device.type == "mps":
        torch.mps.synchronize()


def execute_variant(engine: StreamEngine, frames: list[np.ndarray], variant: str) -> VariantRun:
    """Run ``variant`` over ``frames``; outputs in input order. Leaves the engine reset, its style restored."""
    check_variant(variant)
    if not frames:
        raise ValueError("no frames to run")
    settings = variant_settings(engine, variant, len(frames))
    inputs = _fitted(engine, frames)
    outputs: list[Frame] = []
    with _using(engine, settings):
        _sync(engine)
        started = time.perf_counter()
        if variant == "per-frame":
            for frame in inputs:
                engine.reset()
                outputs += engine.push(frame)  # a warmup of one frame: done at once, attending to itself
                outputs += engine.flush()
        elif variant == "bidirectional":
            for chunk in bidirectional_chunks(len(inputs), engine.settings.warmup):
                engine.reset()
                for i in chunk:
                    outputs += engine.push(inputs[i])  # all warmup: the chunk is denoised at its last frame
                outputs += engine.flush()  # a shorter chunk: its partial warmup, equally bidirectional
        else:
            for frame in inputs:
                outputs += engine.push(frame)
            outputs += engine.flush()
        _sync(engine)
        seconds = time.perf_counter() - started
    if [f.index for f in outputs] != list(range(len(inputs))):
        raise RuntimeError("the engine returned frames out of order")  # an invariant, never expected
    return VariantRun(variant, [f.pixels for f in outputs], seconds)


def run_variant(engine: StreamEngine, frames: list[np.ndarray], variant: str) -> list[np.ndarray]:
    """Outputs (at the engine's resolution) for ``frames`` in input order. Leaves the engine reset."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} (known: {', '.join(VARIANTS)})")
    return execute_variant(engine, frames, variant).outputs
