"""The engine's KV cache: one object for every temporal attention layer and every denoising step.

Per layer, raw ``to_k(x)``/``to_v(x)`` laid out ``(T, HW, heads, L, head_dim)``: step, spatial token,
head, slot, channel. Slots 0..Lw-1 hold the warmup frames, Lw..L-1 a ring of recent ones (windows.py).
That layout makes one row's keys of one head a contiguous ``(L, head_dim)`` block, so attention reads
the cache in place (no transpose, no gather) and a step range is a view.

Bookkeeping is one cursor per step (warmup frames cached, recent frames ever appended). A UNet call
announces what it will write (``begin_warmup`` / ``begin_stream``), the layers write into the buffers in
place, and ``commit`` advances the cursors only after the call succeeded — warmup and streaming alike.
A call that fails leaves the cursors as they were.

Buffers are allocated once, by the first warmup of a stream (eager, before any compiled or captured
call), marked as static addresses for torch.compile / CUDA graphs, and reused by every later stream
(``reset`` keeps them); the steady state never reallocates them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .windows import check_window


@dataclass(frozen=True)
class StepCursor:
    warmup_len: int = 0  # warmup frames cached for this step
    recent_count: int = 0  # non-warmup frames ever appended for this step


@dataclass(frozen=True)
class LayerBuffers:
    k: torch.Tensor  # (T, HW, heads, L, head_dim)
    v: torch.Tensor

    @property
    def tokens(self) -> int:
        return int(self.k.shape[1])

    def nbytes(self) -> int:
        return 2 * self.k.numel() * self.k.element_size()


@dataclass(frozen=True)
class PendingWarmup:
    step: int
    frames: int


@dataclass(frozen=True)
class PendingStream:
    steps: tuple[int, ...]


@dataclass(frozen=True)
class CacheSnapshot:
    """Everything a stream's cache holds at one moment (cursors and buffer contents)."""

    cursors: tuple[StepCursor, ...]
    buffers: tuple[tuple[torch.Tensor, torch.Tensor] | None, ...]


class StreamKVCache:
    def __init__(self, num_layers: int, num_steps: int, window: int, warmup: int) -> None:
        check_window(window, warmup)
        if num_steps < 1:
            raise ValueError("need at least one denoising step")
        self.num_layers, self.num_steps, self.window, self.warmup = num_layers, num_steps, window, warmup
        self._layers: list[LayerBuffers | None] = [None] * num_layers
        self._cursors = [StepCursor()] * num_steps
        self._pending: PendingWarmup | PendingStream | None = None

    @property
    def recent_capacity(self) -> int:
        return self.window - self.warmup

    # -- cursors ------------------------------------------------------------------------------------

    def cursor(self, step: int) -> StepCursor:
        return self._cursors[step]

    @property
    def cursors(self) -> tuple[StepCursor, ...]:
        return tuple(self._cursors)

    def warmed(self, step: int = 0) -> bool:
        return self._cursors[step].warmup_len == self.warmup

    def begin_warmup(self, step: int, frames: int) -> None:
        """A warmup call of ``frames`` frames will write slots 0..frames-1 of ``step``."""
        if not 0 <= step < self.num_steps:
            raise ValueError(f"step {step} outside 0..{self.num_steps - 1}")
        if not 1 <= frames <= self.warmup:
            raise ValueError(f"warmup takes 1..{self.warmup} frames, got {frames}")
        c = self._cursors[step]
        if c.warmup_len or c.recent_count:
            raise RuntimeError(f"step {step} already has cached frames; reset before a new warmup")
        self._pending = PendingWarmup(step, frames)

    def begin_stream(self, row_steps: tuple[int, ...]) -> tuple[int, ...]:
        """A stream call appends one frame to each row's step. Returns each row's recent-frame count
        after its frame is appended (what its window layout depends on)."""
        if len(set(row_steps)) != len(row_steps):
            raise ValueError(f"each batch row must be at a different step, got {list(row_steps)}")
        after = []
        for s in row_steps:
            if not 0 <= s < self.num_steps:
                raise ValueError(f"step {s} outside 0..{self.num_steps - 1}")
            c = self._cursors[s]
            if c.warmup_len != self.warmup:
                raise RuntimeError(f"step {s} has {c.warmup_len} warmup frames cached, need {self.warmup}")
            after.append(c.recent_count + 1)
        self._pending = PendingStream(tuple(row_steps))
        return tuple(after)

    def commit(self) -> None:
        """The call announced by ``begin_*`` succeeded: its frames are now part of the cache."""
        p = self._pending
        if p is None:
            raise RuntimeError("commit without a warmup or stream call in progress")
        if isinstance(p, PendingWarmup):
            self._cursors[p.step] = StepCursor(warmup_len=p.frames)
        else:
            for s in p.steps:
                c = self._cursors[s]
                self._cursors[s] = StepCursor(c.warmup_len, c.recent_count + 1)
        self._pending = None
        self.check()

    def abort(self) -> None:
        """The announced call failed: nothing is committed (slots it wrote are not counted)."""
        self._pending = None

    @property
    def pending(self) -> PendingWarmup | PendingStream | None:
        return self._pending

    def reset(self) -> None:
        """Forget every cached frame; the buffers stay allocated (same addresses) for the next stream."""
        self._cursors = [StepCursor()] * self.num_steps
        self._pending = None

    def release(self) -> None:
        """Reset and free the buffers."""
        self.reset()
        self._layers = [None] * self.num_layers

    # -- buffers ------------------------------------------------------------------------------------

    def ensure_layer(self, layer: int, tokens: int, heads: int, head_dim: int, like: torch.Tensor) -> LayerBuffers:
        """The layer's buffers, allocated on first use (the first warmup: eager, before any capture) and
        again only if the layer's shape, device or dtype changed (a new resolution or precision)."""
        shape = (self.num_steps, tokens, heads, self.window, head_dim)
        buffers = self._layers[layer]
        if buffers is None or tuple(buffers.k.shape) != shape or buffers.k.device != like.device or buffers.k.dtype != like.dtype:
            k = torch.zeros(shape, device=like.device, dtype=like.dtype)
            v = torch.zeros_like(k)
            for t in (k, v):
                # Written in place by every compiled stream call: a static input to torch.compile and
                # CUDA graphs (no per-replay copy, no re-record); unguarded, an address change re-records.
                torch._dynamo.mark_static_address(t)
            buffers = self._layers[layer] = LayerBuffers(k, v)
        return buffers

    def layer(self, layer: int) -> LayerBuffers:
        buffers = self._layers[layer]
        if buffers is None:
            raise RuntimeError("streaming before warmup: the KV cache is empty")
        return buffers

    def entry(self, layer: int, step: int, slot: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Views (HW, heads, head_dim) of one cached frame's K and V (for inspection and tests)."""
        b = self.layer(layer)
        return b.k[step, :, :, slot], b.v[step, :, :, slot]

    def data_ptrs(self) -> tuple[int, ...]:
        return tuple(t.data_ptr() for b in self._layers if b is not None for t in (b.k, b.v))

    def nbytes(self) -> int:
        return sum(b.nbytes() for b in self._layers if b is not None)

    # -- snapshot / restore -------------------------------------------------------------------------

    def snapshot(self) -> CacheSnapshot:
        if self._pending is not None:
            raise RuntimeError("snapshot while a call is in progress")
        buffers = tuple(None if b is None else (b.k.clone(), b.v.clone()) for b in self._layers)
        return CacheSnapshot(tuple(self._cursors), buffers)

    def restore(self, snapshot: CacheSnapshot) -> None:
        """Back to ``snapshot``: contents copied into the existing buffers (addresses kept)."""
        if len(snapshot.buffers) != self.num_layers or len(snapshot.cursors) != self.num_steps:
            raise ValueError("snapshot of a cache with another shape")
        for i, saved in enumerate(snapshot.buffers):
            b = self._layers[i]
            if saved is None:
                continue
            if b is None or b.k.shape != saved[0].shape:
                raise ValueError(f"layer {i}: the snapshot's buffers do not fit this cache")
            b.k.copy_(saved[0])
            b.v.copy_(saved[1])
        self._cursors = list(snapshot.cursors)
        self._pending = None
        self.check()

    # -- invariants -------------------------------------------------------------------------------

    def check(self) -> None:
        """Cursor bounds and buffer shapes (cheap: host integers and shapes only)."""
        for s, c in enumerate(self._cursors):
            assert 0 <= c.warmup_len <= self.warmup, f"step {s}: {c.warmup_len} warmup frames, at most {self.warmup}"
            assert c.recent_count >= 0, f"step {s}: negative recent count"
            assert c.recent_count == 0 or c.warmup_len == self.warmup, f"step {s}: recent frames before a full warmup"
        for i, b in enumerate(self._layers):
            if b is None:
                continue
            assert b.k.shape == b.v.shape, f"layer {i}: K {tuple(b.k.shape)} and V {tuple(b.v.shape)} differ"
            assert b.k.dim() == 5 and b.k.shape[0] == self.num_steps and b.k.shape[3] == self.window, \
                f"layer {i}: buffers {tuple(b.k.shape)}, expected (T={self.num_steps}, HW, heads, L={self.window}, d)"
