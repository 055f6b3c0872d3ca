"""What the streaming temporal attention costs, fused PE against the materialised reference form.

Two figures per temporal attention call in the steady state (T rows, full ring), summed over every
layer of the UNet, from a dispatch-mode meter that sees each aten op:

- bytes moved: bytes of every non-view op's inputs and outputs (a view or reshape moves nothing);
  expanded inputs are counted at their storage size, not their broadcast size;
- allocations: the largest tensor an op allocates during the call, and the peak of bytes held by the
  tensors allocated during the call (each counted from its op's output until that tensor is freed).

Plus the time per frame of whole steady-state pushes, both forms interleaved on one engine.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ..engine.stream import EngineSettings, StreamEngine
from ..engine.temporal import PEMode, StreamingTemporalAttnProcessor
from .models import build_components
from .setup import PROMPT, pattern_frames

def _bytes(t: torch.Tensor) -> int:
    return min(t.numel() * t.element_size(), t.untyped_storage().nbytes())


@dataclass
class CallFigures:
    bytes_moved: int = 0
    largest_allocation: int = 0
    peak_allocated: int = 0
    ops: int = 0


@dataclass
class _Live:
    now: int = 0
    peak: int = 0
    storages: set = field(default_factory=set)


class AllocationMeter(TorchDispatchMode):
    """Counts bytes moved and allocations of every op run under it (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.figures = CallFigures()
        self._live = _Live()

    def _freed(self, ptr: int, nbytes: int) -> None:
        live = self._live
        if ptr in live.storages:
            live.storages.discard(ptr)
            live.now -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        known = {t.untyped_storage().data_ptr() for t in inputs}
        out = func(*args, **kwargs)
        outputs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        f, live = self.figures, self._live
        fresh = [t for t in outputs if t.untyped_storage().data_ptr() not in known]
        in_place = func._schema.name.endswith("_")
        if not fresh and not in_place:
            return out  # a view (or alias) of an input: nothing moved
        f.ops += 1
        if in_place:  # writes its operands' worth into self (an index_put_ touches the rows it writes)
            operands = [t for t in tree_leaves((args[1:], kwargs)) if isinstance(t, torch.Tensor)]
            f.bytes_moved += 2 * sum(_bytes(t) for t in operands)
        else:
            f.bytes_moved += sum(_bytes(t) for t in inputs) + sum(_bytes(t) for t in fresh)
        for t in fresh:
            storage = t.untyped_storage()
            ptr, nbytes = storage.data_ptr(), storage.nbytes()
            if ptr in live.storages or nbytes == 0:
                continue
            live.storages.add(ptr)
            live.now += nbytes
            live.peak = max(live.peak, live.now)
            f.largest_allocation = max(f.largest_allocation, nbytes)
            weakref.finalize(t, self._freed, ptr, nbytes)
        f.peak_allocated = live.peak
        return out


def _engine(size: str, resolution: int, steps: int, window: int, warmup: int) -> StreamEngine:
    from .config import t_index_list_for

    settings = EngineSettings(width=resolution, height=resolution, prompt=PROMPT, t_index_list=t_index_list_for(steps),
                              window=window, warmup=warmup, noise="fixed")
    return StreamEngine(build_components(size, depth=True), settings, device="cpu", dtype=torch.float32)


def _temporal_attentions(engine: StreamEngine) -> list:
    """The UNet's temporal attention modules, in cache-layer order."""
    found = {m.processor.layer: m for m in engine.components.unet.modules()
             if isinstance(getattr(m, "processor", None), StreamingTemporalAttnProcessor)}
    return [found[i] for i in range(len(found))]


@torch.no_grad()
def measure_attention_calls(engine: StreamEngine, mode: PEMode) -> dict:
    """One steady-state STREAM call of every temporal attention (T rows, full ring), metered; the
    cache is left as it was (the call is aborted, its writes restored)."""
    ctx, cache = engine.context, engine.cache
    steps = tuple(range(cache.num_steps))
    saved = cache.snapshot()
    ctx.pe_mode = mode
    total = CallFigures()
    layer_bytes = []
    seconds = 0.0
    gen = torch.Generator().manual_seed(0)
    for layer, attn in enumerate(_temporal_attentions(engine)):
        b = cache.layer(layer)
        layer_bytes.append(b.nbytes() // 2 // cache.num_steps * len(steps))  # K of the rows read
        x = torch.randn(len(steps) * b.tokens, 1, attn.to_q.in_features, generator=gen)
        ctx.begin_stream(steps, device=engine.device)
        try:
            with AllocationMeter() as meter:
                started = time.perf_counter()
                attn(x)
                seconds += time.perf_counter() - started
        finally:
            ctx.abort()
        f = meter.figures
        total.bytes_moved += f.bytes_moved
        total.ops += f.ops
        total.largest_allocation = max(total.largest_allocation, f.largest_allocation)
        total.peak_allocated = max(total.peak_allocated, f.peak_allocated)
    cache.restore(saved)
    ctx.pe_mode = PEMode.FUSED
    return {
        "bytes_moved_per_frame": total.bytes_moved,
        "largest_allocation_bytes": total.largest_allocation,
        "peak_allocated_bytes": total.peak_allocated,
        "largest_cache_rows_bytes": max(layer_bytes),  # K of one layer's T rows: what a copy would allocate
        "ops_per_frame": total.ops,
        "metered_ms": round(1000 * seconds, 3),
    }


@torch.no_grad()
def measure_pe_attention(size: str = "tiny", resolution: int = 64, steps: int = 2, window: int = 16, warmup: int = 8,
                         pushes: int = 12, repeats: int = 3) -> dict:
    """Fused against materialised PE on one engine: metered attention calls and ms per steady-state push."""
    engine = _engine(size, resolution, steps, window, warmup)
    frames = pattern_frames(resolution, resolution, window + steps + pushes * repeats * 2 + 4)
    stream = iter(frames)
    for _ in range(window + steps):  # warmup, pipeline fill, the ring full
        engine.push(next(stream))
    result: dict = {"size": size, "resolution": resolution, "T": steps, "L": window, "Lw": warmup,
                    "cache_bytes": engine.cache.nbytes(), "modes": {}}
    for mode in PEMode:
        result["modes"][mode.value] = measure_attention_calls(engine, mode)
    times: dict[str, list[float]] = {m.value: [] for m in PEMode}
    for _ in range(repeats):  # interleaved, so a load spike does not hit one form only
        for mode in PEMode:
            engine.context.pe_mode = mode
            for _ in range(pushes):
                started = time.perf_counter()
                engine.push(next(stream))
                times[mode.value].append(time.perf_counter() - started)
    engine.context.pe_mode = PEMode.FUSED
    for name, values in times.items():
        values.sort()
        result["modes"][name]["ms_per_frame_p50"] = round(1000 * values[len(values) // 2], 2)
    fused, ref = result["modes"]["fused"], result["modes"]["materialised"]
    result["ratios_materialised_over_fused"] = {
        key: round(ref[key] / fused[key], 3) if fused[key] else None
        for key in ("bytes_moved_per_frame", "largest_allocation_bytes", "peak_allocated_bytes", "ms_per_frame_p50",
                    "metered_ms")
    }
    engine.close()
    return result
