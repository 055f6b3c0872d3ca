"""Live2Diff temporal self-attention on diffusers' AnimateDiff motion modules.

The UNet is not forked. ``patch_motion_modules`` swaps three things inside every motion module:

- the attention processor of both temporal self-attentions (``attn1``/``attn2``) for
  ``StreamingTemporalAttnProcessor``, which implements the warmup / streaming / reference / clip
  modes and owns the positional encoding;
- the block's ``pos_embed`` for ``PositionTable``: it keeps the sinusoidal table (same state-dict key
  ``pe``) but no longer adds it, because the position of a key depends on its slot in the window;
- the transformer's GroupNorm for ``PerFrameGroupNorm``: diffusers normalises over all frames jointly,
  which leaks the future and mismatches Live2Diff's (per-frame) weights.

Per-call state (mode, which denoising step each batch row is at, window bookkeeping) lives in one
``TemporalContext`` shared by all processors: diffusers passes no kwargs to motion-module processors.

Positional encoding (paper App. A.5): q/k/v projections have no bias, so
``to_k(x + PE[p]) = to_k(x) + to_k(PE[p])``. The cache holds raw ``to_k(x)``/``to_v(x)``; the projected
PE rows are added at attention time for whatever position each slot has now. PE goes on q, k and v.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


class AttentionMode(enum.Enum):
    WARMUP = "warmup"  # F warmup frames, bidirectional, positions 0..F-1, cache written at slots 0..F-1
    STREAM = "stream"  # one new frame per batch row, each row at its own denoising step, cache read+write
    REFERENCE = "reference"  # whole sequence, every query gathers its own window; no cache (the oracle)
    CLIP = "clip"  # a clip with the training mask (warmup bidirectional, rest causal); no cache


@dataclass
class StepWindow:
    """Window bookkeeping of one denoising step, identical for every attention layer."""

    warmup_len: int = 0  # warmup frames cached for this step
    recent_count: int = 0  # non-warmup frames ever appended for this step


@dataclass
class RowLayout:
    """Where each batch row of a STREAM call reads and writes (computed once per UNet call)."""

    steps: torch.Tensor  # (R,) long: denoising step (= cache index) of each row
    write_slots: torch.Tensor  # (R,) long: slot the row's new K/V goes to
    kv_positions: torch.Tensor  # (R, L) long: PE position of each slot as seen by that row
    kv_valid: torch.Tensor  # (R, L) bool: which slots hold a frame for that row
    q_positions: torch.Tensor  # (R,) long: PE position of the row's query (the newest)
    all_valid: bool  # every slot valid for every row: no mask needed
    rows_are_all_steps: bool  # rows are exactly steps 0..S-1 in order: read the cache without a gather
    row_steps: tuple[int, ...] = ()  # the same steps on the host (bookkeeping never reads the device)


# Distinct STREAM layouts a context remembers (the steady state cycles through L - Lw of them).
_MAX_LAYOUTS = 512


@dataclass
class _CountTables:
    """Per recent-frame count c (after the row's own frame is appended), on one device: the PE
    position of every slot, which slots hold a frame, the slot written, the query's position.
    Entry c - 1 for c <= 2(L - Lw); later counts repeat with period L - Lw (see ``entry``)."""

    positions: torch.Tensor  # (E, L) long
    valid: torch.Tensor  # (E, L) bool
    write_slot: torch.Tensor  # (E,) long
    q_position: torch.Tensor  # (E,) long
    step_ids: torch.Tensor  # (T,) long: 0..T-1
    valid_host: list[bool]  # entry -> every slot valid

    @staticmethod
    def entry(count_after: int, cap: int) -> int:
        if count_after <= 2 * cap:
            return count_after - 1
        return cap + (count_after - cap - 1) % cap

    @classmethod
    def build(cls, window: int, warmup: int, num_steps: int, device: torch.device) -> "_CountTables":
        L, Lw, cap = window, warmup, window - warmup
        positions, valid, slots, q_pos = [], [], [], []
        for count_after in range(1, 2 * cap + 1):
            n = min(count_after, cap)
            oldest = count_after - n  # recent-frame number of the oldest one still in the window
            pos = list(range(L))  # warmup slots keep positions 0..Lw-1
            ok = [True] * Lw + [False] * cap
            for r in range(oldest, count_after):
                slot = Lw + r % cap
                pos[slot] = Lw + (r - oldest)
                ok[slot] = True
            positions.append(pos)
            valid.append(ok)
            slots.append(Lw + (count_after - 1) % cap)
            q_pos.append(Lw + n - 1)
        # Built once per (context, device), outside any stream call.
        return cls(
            positions=torch.tensor(positions, dtype=torch.long).to(device),
            valid=torch.tensor(valid, dtype=torch.bool).to(device),
            write_slot=torch.tensor(slots, dtype=torch.long).to(device),
            q_position=torch.tensor(q_pos, dtype=torch.long).to(device),
            step_ids=torch.arange(num_steps, dtype=torch.long).to(device),
            valid_host=[all(v) for v in valid],
        )

    def layout(self, row_steps: tuple[int, ...], entries: list[int], cap: int) -> RowLayout:
        """Rows' layouts gathered with Python ints (views and one stack each: no host data read)."""

        def rows_of(table: torch.Tensor, index) -> torch.Tensor:
            return torch.stack([table[i] for i in index])

        return RowLayout(
            steps=rows_of(self.step_ids, row_steps),
            write_slots=rows_of(self.write_slot, entries),
            kv_positions=rows_of(self.positions, entries),
            kv_valid=rows_of(self.valid, entries),
            q_positions=rows_of(self.q_position, entries),
            all_valid=all(self.valid_host[e] for e in entries),
            rows_are_all_steps=row_steps == tuple(range(len(self.step_ids))),
            row_steps=row_steps,
        )


@dataclass
class WindowLayout:
    """Per-query windows for REFERENCE/CLIP calls over F frames."""

    kv_index: torch.Tensor  # (F, L') long: frame index of each key slot for each query
    kv_positions: torch.Tensor  # (F, L') long
    kv_valid: torch.Tensor  # (F, L') bool
    q_positions: torch.Tensor  # (F,) long


@dataclass
class TemporalContext:
    """State shared by every streaming temporal attention of one UNet."""

    window: int  # L
    warmup: int  # Lw
    num_steps: int  # T: one KV cache per denoising step
    mode: AttentionMode = AttentionMode.CLIP
    warmup_step: int = 0
    rows: RowLayout | None = None
    frames_layout: WindowLayout | None = None
    steps: list[StepWindow] = field(default_factory=list)
    processors: list["StreamingTemporalAttnProcessor"] = field(default_factory=list)
    _tables: dict = field(default_factory=dict, repr=False)  # device -> _CountTables
    _layouts: dict = field(default_factory=dict, repr=False)  # (device, rows, entries) -> RowLayout

    def __post_init__(self) -> None:
        if not 1 <= self.warmup < self.window:
            raise ValueError(f"need 1 <= warmup < window, got warmup={self.warmup} window={self.window}")
        if self.num_steps < 1:
            raise ValueError("need at least one denoising step")
        self.steps = [StepWindow() for _ in range(self.num_steps)]

    @property
    def recent_capacity(self) -> int:
        return self.window - self.warmup

    # -- cache lifecycle -------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every cached frame (keeps allocated buffers for reuse)."""
        self.steps = [StepWindow() for _ in range(self.num_steps)]
        self.rows = None
        self.frames_layout = None

    def release(self) -> None:
        """Reset and free the cache tensors."""
        self.reset()
        for proc in self.processors:
            proc.cache = None

    def cache_bytes(self) -> int:
        total = 0
        for proc in self.processors:
            if proc.cache is not None:
                total += proc.cache.nbytes()
        return total

    # -- per-call setup --------------------------------------------------------------------------

    def begin_warmup(self, step: int, num_frames: int) -> None:
        if not 1 <= num_frames <= self.warmup:
            raise ValueError(f"warmup takes 1..{self.warmup} frames, got {num_frames}")
        if self.steps[step].warmup_len or self.steps[step].recent_count:
            raise RuntimeError(f"step {step} already has cached frames; reset before a new warmup")
        self.mode = AttentionMode.WARMUP
        self.warmup_step = step
        self.steps[step].warmup_len = num_frames

    def _count_tables(self, device: torch.device) -> "_CountTables":
        tables = self._tables.get(device)
        if tables is None:
            tables = self._tables[device] = _CountTables.build(self.window, self.warmup, self.num_steps, device)
        return tables

    def begin_stream(self, row_steps: list[int], device: torch.device) -> None:
        """Set the row layout of a STREAM call. Sync-free: the layout of a row depends only on how
        many recent frames its step holds (periodic with period L - Lw once the ring is full), so
        it is picked from tables built once on the device with Python-int indexing; a call's layout
        is memoised, so the steady state reuses the same L - Lw layouts and launches nothing."""
        row_steps = tuple(int(s) for s in row_steps)
        if len(set(row_steps)) != len(row_steps):
            raise ValueError(f"each batch row must be at a different step, got {list(row_steps)}")
        cap = self.recent_capacity
        entries = []
        for s in row_steps:
            st = self.steps[s]
            if st.warmup_len != self.warmup:
                raise RuntimeError(f"step {s} has {st.warmup_len} warmup frames cached, need {self.warmup}")
            entries.append(_CountTables.entry(st.recent_count + 1, cap))  # the row's own frame is appended first
        key = (device, row_steps, tuple(entries))
        layout = self._layouts.get(key)
        if layout is None:
            if len(self._layouts) >= _MAX_LAYOUTS:
                self._layouts.clear()
            layout = self._layouts[key] = self._count_tables(device).layout(row_steps, entries, cap)
        self.mode = AttentionMode.STREAM
        self.rows = layout

    def end_stream(self) -> None:
        """Commit the frames a STREAM call appended (call after the UNet call succeeded)."""
        assert self.rows is not None
        for s in self.rows.row_steps:
            self.steps[s].recent_count += 1
        self.rows = None

    def begin_reference(self, num_frames: int, device: torch.device) -> None:
        """Each query frame i sees what streaming would give it: warmup + its recent frames."""
        Lw, cap = self.warmup, self.recent_capacity
        lw = min(Lw, num_frames)
        index, pos, valid, q_pos = [], [], [], []
        for i in range(num_frames):
            keys = list(range(lw))
            if i >= Lw:
                keys += list(range(max(Lw, i - cap + 1), i + 1))
            positions = list(range(len(keys)))  # warmup 0..Lw-1, then Lw.. in temporal order
            q_pos.append(i if i < Lw else positions[-1])
            pad = self.window - len(keys)
            index.append(keys + [0] * pad)
            pos.append(positions + [0] * pad)
            valid.append([True] * len(keys) + [False] * pad)
        self._set_frames_layout(AttentionMode.REFERENCE, index, pos, valid, q_pos, device)

    def begin_clip(self, num_frames: int, device: torch.device) -> None:
        """The training mask on one clip: frames < Lw see all of < Lw; later frames see < Lw and Lw..i."""
        if num_frames > self.window:
            raise ValueError(f"a clip holds at most {self.window} frames, got {num_frames}")
        Lw = self.warmup
        index, pos, valid, q_pos = [], [], [], []
        for i in range(num_frames):
            keys = list(range(min(Lw, num_frames))) + (list(range(Lw, i + 1)) if i >= Lw else [])
            pad = num_frames - len(keys)
            index.append(keys + [0] * pad)
            pos.append(keys + [0] * pad)  # clip positions are the frames' own indices
            valid.append([True] * len(keys) + [False] * pad)
            q_pos.append(i)
        self._set_frames_layout(AttentionMode.CLIP, index, pos, valid, q_pos, device)

    def _set_frames_layout(self, mode, index, pos, valid, q_pos, device) -> None:
        self.mode = mode
        self.frames_layout = WindowLayout(
            kv_index=torch.tensor(index, dtype=torch.long, device=device),
            kv_positions=torch.tensor(pos, dtype=torch.long, device=device),
            kv_valid=torch.tensor(valid, dtype=torch.bool, device=device),
            q_positions=torch.tensor(q_pos, dtype=torch.long, device=device),
        )


class LayerKVCache:
    """Raw to_k(x)/to_v(x) of one temporal attention layer for every denoising step.

    Layout (steps, HW, L, C): slots 0..Lw-1 hold the warmup frames (never evicted), slots Lw..L-1
    are a ring of the most recent frames (a new frame overwrites the oldest; no copies).
    """

    def __init__(self, num_steps: int, tokens: int, window: int, channels: int, device, dtype) -> None:
        self.k = torch.zeros(num_steps, tokens, window, channels, device=device, dtype=dtype)
        self.v = torch.zeros_like(self.k)

    def matches(self, tokens: int, channels: int, device, dtype) -> bool:
        return (
            self.k.shape[1] == tokens and self.k.shape[3] == channels and self.k.device == device and self.k.dtype == dtype
        )

    def nbytes(self) -> int:
        return 2 * self.k.numel() * self.k.element_size()


class PositionTable(nn.Module):
    """Holds the sinusoidal PE table under the stock key ``pe`` but adds nothing in forward:
    positions are applied by the streaming processor, which knows each slot's place in the window."""

    def __init__(self, pe: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class PerFrameGroupNorm(nn.GroupNorm):
    """GroupNorm over (C, H, W) of each frame separately; input laid out (B, C, F, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = x.shape
        y = x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        y = F.group_norm(y, self.num_groups, self.weight, self.bias, self.eps)
        return y.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)


class StreamingTemporalAttnProcessor:
    """Temporal self-attention with Live2Diff's warmup window and a per-step KV cache."""

    def __init__(self, context: TemporalContext, position_table: PositionTable) -> None:
        self.context = context
        self.position_table = position_table
        self.cache: LayerKVCache | None = None
        self._pe_proj: tuple[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None

    # Projected PE rows, recomputed only when the weights change (LoRA fuse, reload, dtype move).
    # Eager calls (warmup, reference, clip) check the weights; STREAM calls use what the stream's
    # warmup stored, so weights must not change between a warmup and the stream it starts.
    def _projected_pe(self, attn) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        weights = (attn.to_q.weight, attn.to_k.weight, attn.to_v.weight)
        if torch.is_grad_enabled() and any(w.requires_grad for w in weights):
            # Training: the PE rows are part of the graph (their gradient reaches to_q/k/v); no cache.
            pe = self.position_table.pe[0].to(dtype=weights[0].dtype)
            return tuple(F.linear(pe, w) for w in weights)  # type: ignore[return-value]
        key = tuple((w.data_ptr(), w._version, w.dtype, w.device) for w in weights)
        if self._pe_proj is None or self._pe_proj[0] != key:
            pe = self.position_table.pe[0].to(dtype=weights[0].dtype)
            with torch.no_grad():
                projected = tuple(F.linear(pe, w) for w in weights)
            self._pe_proj = (key, projected)  # type: ignore[assignment]
        return self._pe_proj[1]

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None, temb=None):
        if encoder_hidden_states is not None or attention_mask is not None:
            raise RuntimeError("temporal self-attention takes neither encoder states nor an external mask")
        if attn.to_q.bias is not None or attn.to_k.bias is not None or attn.to_v.bias is not None:
            raise RuntimeError("streaming temporal attention needs bias-free q/k/v projections")
        if attn.norm_cross or attn.group_norm is not None or attn.spatial_norm is not None:
            raise RuntimeError("unsupported temporal attention configuration (extra norms)")
        ctx = self.context
        mode = ctx.mode
        if mode is AttentionMode.WARMUP:
            out = self._warmup(attn, hidden_states)
        elif mode is AttentionMode.STREAM:
            out = self._stream(attn, hidden_states)
        else:
            out = self._windows(attn, hidden_states)
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor

    def _ensure_cache(self, tokens: int, channels: int, like: torch.Tensor) -> LayerKVCache:
        ctx = self.context
        if self.cache is None or not self.cache.matches(tokens, channels, like.device, like.dtype):
            self.cache = LayerKVCache(ctx.num_steps, tokens, ctx.window, channels, like.device, like.dtype)
        return self.cache

    @staticmethod
    def _attend(attn, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """q (N, Lq, C), k/v (N, Lk, C), mask None or bool broadcastable to (N, 1, Lq, Lk) -> (N, Lq, C)."""
        n, lq, c = q.shape
        heads = attn.heads
        d = c // heads
        q = q.view(n, lq, heads, d).transpose(1, 2)
        k = k.reshape(n, -1, heads, d).transpose(1, 2)
        v = v.reshape(n, -1, heads, d).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=attn.scale)
        return out.transpose(1, 2).reshape(n, lq, c)

    def _warmup(self, attn, x: torch.Tensor) -> torch.Tensor:
        ctx = self.context
        tokens, frames, _ = x.shape  # (HW, F, C_in): warmup runs one stream (batch 1)
        q_pe, k_pe, v_pe = self._projected_pe(attn)
        q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
        cache = self._ensure_cache(tokens, k.shape[-1], k)
        cache.k[ctx.warmup_step, :, :frames] = k
        cache.v[ctx.warmup_step, :, :frames] = v
        return self._attend(attn, q + q_pe[:frames], k + k_pe[:frames], v + v_pe[:frames], None)

    def _stream(self, attn, x: torch.Tensor) -> torch.Tensor:
        ctx = self.context
        rows = ctx.rows
        assert rows is not None
        num_rows = rows.steps.shape[0]
        tokens = x.shape[0] // num_rows
        if x.shape[1] != 1 or tokens * num_rows != x.shape[0]:
            raise RuntimeError(f"streaming expects one frame per row, got hidden states {tuple(x.shape)}")
        if self._pe_proj is None:
            raise RuntimeError("streaming before warmup: the projected positional encodings are not set")
        # The rows the warmup of this stream projected (eager, with the weight check): no Python-level
        # tensor identity check here, so the compiled stream call stays one graph.
        q_pe, k_pe, v_pe = self._pe_proj[1]
        x = x.view(num_rows, tokens, -1)
        q, k_new, v_new = attn.to_q(x), attn.to_k(x), attn.to_v(x)  # (R, HW, C)
        cache = self.cache
        if cache is None or cache.k.shape[1] != tokens:
            raise RuntimeError("streaming before warmup: the KV cache is empty")
        cache.k[rows.steps, :, rows.write_slots] = k_new
        cache.v[rows.steps, :, rows.write_slots] = v_new
        if rows.rows_are_all_steps:
            k_all, v_all = cache.k, cache.v  # (R, HW, L, C) without a copy
        else:
            k_all, v_all = cache.k[rows.steps], cache.v[rows.steps]
        k_all = k_all + k_pe[rows.kv_positions].unsqueeze(1)
        v_all = v_all + v_pe[rows.kv_positions].unsqueeze(1)
        q = q + q_pe[rows.q_positions].unsqueeze(1)
        channels = q.shape[-1]
        window = k_all.shape[2]
        mask = None
        if not rows.all_valid:
            mask = rows.kv_valid.view(num_rows, 1, 1, 1, window).expand(num_rows, tokens, 1, 1, window)
            mask = mask.reshape(num_rows * tokens, 1, 1, window)
        out = self._attend(
            attn,
            q.reshape(num_rows * tokens, 1, channels),
            k_all.reshape(num_rows * tokens, window, channels),
            v_all.reshape(num_rows * tokens, window, channels),
            mask,
        )
        return out  # (R*HW, 1, C)

    def _windows(self, attn, x: torch.Tensor) -> torch.Tensor:
        """REFERENCE / CLIP: each query frame attends over its own window, gathered from this pass."""
        layout = self.context.frames_layout
        assert layout is not None
        tokens, frames, _ = x.shape
        if layout.q_positions.shape[0] != frames:
            raise RuntimeError(f"layout for {layout.q_positions.shape[0]} frames, got {frames}")
        q_pe, k_pe, v_pe = self._projected_pe(attn)
        q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)  # (HW, F, C)
        channels = q.shape[-1]
        window = layout.kv_index.shape[1]
        k_sel = k[:, layout.kv_index] + k_pe[layout.kv_positions]  # (HW, F, L', C)
        v_sel = v[:, layout.kv_index] + v_pe[layout.kv_positions]
        q = q + q_pe[layout.q_positions]
        mask = layout.kv_valid.view(1, frames, 1, 1, window).expand(tokens, frames, 1, 1, window)
        out = self._attend(
            attn,
            q.reshape(tokens * frames, 1, channels),
            k_sel.reshape(tokens * frames, window, channels),
            v_sel.reshape(tokens * frames, window, channels),
            mask.reshape(tokens * frames, 1, 1, window),
        )
        return out.view(tokens, frames, channels)


def motion_transformers(unet: nn.Module) -> list[nn.Module]:
    """Every AnimateDiff motion transformer in the UNet, in module order."""
    from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

    return [m for m in unet.modules() if isinstance(m, AnimateDiffTransformer3D)]


def patch_motion_modules(unet: nn.Module, window: int, warmup: int, num_steps: int) -> TemporalContext:
    """Turn every motion module of a diffusers UNetMotionModel into Live2Diff streaming attention.

    Idempotent: patching an already patched UNet rebinds it to a fresh context. State-dict keys are
    unchanged, so weights can be loaded before or after patching.
    """
    context = TemporalContext(window=window, warmup=warmup, num_steps=num_steps)
    transformers = motion_transformers(unet)
    if not transformers:
        raise ValueError("the UNet has no motion modules to patch")
    for transformer in transformers:
        norm = transformer.norm
        if not isinstance(norm, PerFrameGroupNorm):
            per_frame = PerFrameGroupNorm(norm.num_groups, norm.num_channels, eps=norm.eps, affine=norm.affine,
                                          device=norm.weight.device, dtype=norm.weight.dtype)
            per_frame.load_state_dict(norm.state_dict())
            transformer.norm = per_frame
        for block in transformer.transformer_blocks:
            table = block.pos_embed
            if table is None:
                raise ValueError("motion module without sinusoidal positional embeddings is not supported")
            if not isinstance(table, PositionTable):
                table = PositionTable(block.pos_embed.pe)
                block.pos_embed = table
            if table.pe.shape[1] < window:
                raise ValueError(
                    f"the motion modules know {table.pe.shape[1]} positions but the window is {window}; "
                    f"use window <= {table.pe.shape[1]}"
                )
            for attn in (block.attn1, block.attn2):
                if attn is None or attn.is_cross_attention:
                    raise ValueError("motion blocks must hold two temporal self-attentions (attn1, attn2)")
                proc = StreamingTemporalAttnProcessor(context, table)
                attn.set_processor(proc)
                context.processors.append(proc)
    return context
