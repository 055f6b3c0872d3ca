"""Live2Diff temporal self-attention on diffusers' AnimateDiff motion modules.

The UNet is not forked. ``patch_motion_modules`` swaps three things inside every motion module:

- the attention processor of both temporal self-attentions (``attn1``/``attn2``) for
  ``StreamingTemporalAttnProcessor``, which implements the warmup / streaming / reference / clip
  calls and owns the positional encoding;
- the block's ``pos_embed`` for ``PositionTable``: it keeps the sinusoidal table (same state-dict key
  ``pe``) but no longer adds it, because the position of a key depends on its slot in the window;
- the transformer's GroupNorm for ``PerFrameGroupNorm``: diffusers normalises over all frames jointly,
  which leaks the future and mismatches Live2Diff's (per-frame) weights.

Per-call state (which call this is, which denoising step each batch row is at, its window layout)
lives in one ``TemporalContext`` shared by all processors (diffusers passes no kwargs to
motion-module processors); the cached K/V of every layer and step is one ``StreamKVCache``
(kvcache.py); which frames a query reads comes from windows.py.

Positional encoding (paper App. A.5): q/k/v projections have no bias, so
``to_k(x + PE[p]) = to_k(x) + to_k(PE[p])``. The cache holds raw ``to_k(x)``/``to_v(x)``; the projected
PE rows are added at attention time for whatever position each slot has now. PE goes on q, k and v.
Streaming reads the cache once: the PE rows enter as a logits bias ``q . k_pe[pos]`` and an output term
``softmax . v_pe[pos]`` instead of a per-layer ``cache + PE`` copy (``PEMode.FUSED``; the copy is kept
as ``PEMode.MATERIALISED``, the reference form).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .kvcache import StreamKVCache
from .windows import check_window, clip_window, layout_entry, layout_table, query_position, stream_window


class AttentionMode(enum.Enum):
    WARMUP = "warmup"  # F warmup frames, bidirectional, positions 0..F-1, cache written at slots 0..F-1
    STREAM = "stream"  # one new frame per batch row, each row at its own denoising step, cache read+write
    REFERENCE = "reference"  # whole sequence, every query gathers its own window; no cache (the oracle)
    CLIP = "clip"  # a clip with the training mask (warmup bidirectional, rest causal); no cache


class PEMode(enum.Enum):
    """How a STREAM call adds the projected PE rows to the cached K/V."""

    FUSED = "fused"  # logits bias q.k_pe[pos] and softmax.v_pe[pos]: the cache is read once, no copy
    MATERIALISED = "materialised"  # k_all = cache.k + k_pe[pos] (and v_all): the reference form


@dataclass
class RowLayout:
    """Where each batch row of a STREAM call reads and writes (computed once per row configuration)."""

    steps: torch.Tensor  # (R,) long: denoising step (= cache index) of each row
    write_slots: torch.Tensor  # (R,) long: slot the row's new K/V goes to
    kv_positions: torch.Tensor  # (R, L) long: PE position of each slot as seen by that row
    kv_valid: torch.Tensor  # (R, L) bool: which slots hold a frame for that row
    kv_invalid: torch.Tensor  # (R, L) bool: ~kv_valid (precomputed: no per-layer op)
    q_positions: torch.Tensor  # (R,) long: PE position of the row's query (the newest)
    all_valid: bool  # every slot valid for every row: no mask needed
    rows_are_all_steps: bool  # rows are exactly steps 0..T-1 in order (the steady state): the cache is read in place
    row_steps: tuple[int, ...] = ()  # the same steps on the host (bookkeeping never reads the device)


# Distinct STREAM layouts a context remembers (the steady state cycles through L - Lw of them).
_MAX_LAYOUTS = 512


@dataclass
class _LayoutTables:
    """``windows.layout_table`` on one device, indexed by ``windows.layout_entry``."""

    positions: torch.Tensor  # (E, L) long
    valid: torch.Tensor  # (E, L) bool
    invalid: torch.Tensor  # (E, L) bool
    write_slot: torch.Tensor  # (E,) long
    q_position: torch.Tensor  # (E,) long
    step_ids: torch.Tensor  # (T,) long: 0..T-1
    valid_host: list[bool]  # entry -> every slot valid

    @classmethod
    def build(cls, window: int, warmup: int, num_steps: int, device: torch.device) -> "_LayoutTables":
        table = layout_table(window, warmup)
        valid = torch.tensor([e.valid for e in table], dtype=torch.bool)
        # Built once per (context, device), outside any stream call.
        return cls(
            positions=torch.tensor([e.positions for e in table], dtype=torch.long).to(device),
            valid=valid.to(device),
            invalid=(~valid).to(device),
            write_slot=torch.tensor([e.write_slot for e in table], dtype=torch.long).to(device),
            q_position=torch.tensor([e.q_position for e in table], dtype=torch.long).to(device),
            step_ids=torch.arange(num_steps, dtype=torch.long).to(device),
            valid_host=[e.all_valid for e in table],
        )

    def layout(self, row_steps: tuple[int, ...], entries: list[int]) -> RowLayout:
        """Rows' layouts gathered with Python ints (views and one stack each: no host data read)."""

        def rows_of(table: torch.Tensor, index) -> torch.Tensor:
            rows = torch.stack([table[i] for i in index])
            # Memoised, so its address is stable: a static input of a captured (CUDA-graph) call.
            torch._dynamo.mark_static_address(rows)
            return rows

        return RowLayout(
            steps=rows_of(self.step_ids, row_steps),
            write_slots=rows_of(self.write_slot, entries),
            kv_positions=rows_of(self.positions, entries),
            kv_valid=rows_of(self.valid, entries),
            kv_invalid=rows_of(self.invalid, entries),
            q_positions=rows_of(self.q_position, entries),
            all_valid=all(self.valid_host[e] for e in entries),
            # Only the steady state reads the cache as a view: a slice start would be one more guard,
            # so one more compiled variant, for the few fill/drain calls, which gather their rows instead.
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
    """State shared by every streaming temporal attention of one UNet: the KV cache and what the
    current UNet call is. A warmup or stream call is announced by ``begin_*`` and ends with ``commit``
    (it succeeded: the cache cursors advance) or ``abort``; a reference or clip layout stays set until
    the next ``begin_*`` (those calls touch no cache, so repeating one is harmless)."""

    window: int  # L
    warmup: int  # Lw
    num_steps: int  # T: one KV cache per denoising step
    num_layers: int = 0  # temporal attentions sharing this context
    pe_mode: PEMode = PEMode.FUSED
    cache: StreamKVCache = field(init=False)
    mode: AttentionMode | None = field(default=None, init=False)  # None: no call announced
    warmup_step: int = field(default=0, init=False)
    rows: RowLayout | None = field(default=None, init=False)
    frames_layout: WindowLayout | None = field(default=None, init=False)
    processors: list["StreamingTemporalAttnProcessor"] = field(default_factory=list, init=False)
    _tables: dict = field(default_factory=dict, init=False, repr=False)  # device -> _LayoutTables
    _layouts: dict = field(default_factory=dict, init=False, repr=False)  # (device, rows, entries) -> RowLayout

    def __post_init__(self) -> None:
        check_window(self.window, self.warmup)
        if self.num_steps < 1:
            raise ValueError("need at least one denoising step")
        self.cache = StreamKVCache(self.num_layers, self.num_steps, self.window, self.warmup)

    @property
    def recent_capacity(self) -> int:
        return self.window - self.warmup

    # -- cache lifecycle -------------------------------------------------------------------------

    def _clear_call(self) -> None:
        self.mode, self.rows, self.frames_layout = None, None, None

    def reset(self) -> None:
        """Forget every cached frame (keeps allocated buffers, at the same addresses)."""
        self.cache.reset()
        self._clear_call()

    def release(self) -> None:
        """Reset and free the cache tensors."""
        self.reset()
        self.cache.release()

    def commit(self) -> None:
        """The announced warmup or stream call succeeded: its frames are cached for good."""
        self.cache.commit()
        self._clear_call()

    def abort(self) -> None:
        """The announced call failed: nothing is committed; the call can be retried or the stream reset."""
        self.cache.abort()
        self._clear_call()

    # -- per-call setup --------------------------------------------------------------------------

    def begin_warmup(self, step: int, num_frames: int) -> None:
        self.cache.begin_warmup(step, num_frames)
        self._clear_call()
        self.mode = AttentionMode.WARMUP
        self.warmup_step = step

    def _layout_tables(self, device: torch.device) -> _LayoutTables:
        tables = self._tables.get(device)
        if tables is None:
            tables = self._tables[device] = _LayoutTables.build(self.window, self.warmup, self.num_steps, device)
        return tables

    def begin_stream(self, row_steps, device: torch.device) -> None:
        """Set the row layout of a STREAM call. Sync-free: the layout of a row depends only on how
        many recent frames its step holds (periodic with period L - Lw once the ring is full), so
        it is picked from tables built once on the device with Python-int indexing; a call's layout
        is memoised, so the steady state reuses the same L - Lw layouts and launches nothing."""
        row_steps = tuple(int(s) for s in row_steps)
        counts = self.cache.begin_stream(row_steps)
        entries = [layout_entry(self.window, self.warmup, c) for c in counts]
        key = (device, row_steps, tuple(entries))
        layout = self._layouts.get(key)
        if layout is None:
            if len(self._layouts) >= _MAX_LAYOUTS:
                self._layouts.clear()
            layout = self._layouts[key] = self._layout_tables(device).layout(row_steps, entries)
        self._clear_call()
        self.mode = AttentionMode.STREAM
        self.rows = layout

    def begin_reference(self, num_frames: int, device: torch.device) -> None:
        """Each query frame i sees what streaming would give it: warmup + its recent frames."""
        L, Lw = self.window, self.warmup
        index, pos, valid, q_pos = [], [], [], []
        for i in range(num_frames):
            keys = [k for k in stream_window(L, Lw, i) if k < num_frames]  # a short sequence: fewer warmup frames
            pad = L - len(keys)
            index.append(keys + [0] * pad)
            pos.append(list(range(len(keys))) + [0] * pad)  # warmup 0..Lw-1, then Lw.. in temporal order
            valid.append([True] * len(keys) + [False] * pad)
            q_pos.append(query_position(L, Lw, i))
        self._set_frames_layout(AttentionMode.REFERENCE, index, pos, valid, q_pos, device)

    def begin_clip(self, num_frames: int, device: torch.device) -> None:
        """The training mask on one clip: frames < Lw see all of < Lw; later frames see < Lw and Lw..i."""
        if num_frames > self.window:
            raise ValueError(f"a clip holds at most {self.window} frames, got {num_frames}")
        index, pos, valid, q_pos = [], [], [], []
        for i in range(num_frames):
            keys = list(clip_window(self.warmup, num_frames, i))
            pad = num_frames - len(keys)
            index.append(keys + [0] * pad)
            pos.append(keys + [0] * pad)  # clip positions are the frames' own indices
            valid.append([True] * len(keys) + [False] * pad)
            q_pos.append(i)
        self._set_frames_layout(AttentionMode.CLIP, index, pos, valid, q_pos, device)

    def end_windows(self) -> None:
        """Drop a reference or clip layout (those calls commit nothing to the cache)."""
        if self.cache.pending is None:
            self._clear_call()

    def _set_frames_layout(self, mode, index, pos, valid, q_pos, device) -> None:
        if self.cache.pending is not None:
            raise RuntimeError("a warmup or stream call is in progress: commit or abort it first")
        self._clear_call()
        self.mode = mode
        self.frames_layout = WindowLayout(
            kv_index=torch.tensor(index, dtype=torch.long, device=device),
            kv_positions=torch.tensor(pos, dtype=torch.long, device=device),
            kv_valid=torch.tensor(valid, dtype=torch.bool, device=device),
            q_positions=torch.tensor(q_pos, dtype=torch.long, device=device),
        )


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
    """Temporal self-attention with Live2Diff's warmup window, reading and writing layer ``layer`` of
    the context's ``StreamKVCache``."""

    def __init__(self, context: TemporalContext, position_table: PositionTable, layer: int) -> None:
        self.context = context
        self.position_table = position_table
        self.layer = layer
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
        mode = self.context.mode
        if mode is AttentionMode.WARMUP:
            out = self._warmup(attn, hidden_states)
        elif mode is AttentionMode.STREAM:
            out = self._stream(attn, hidden_states)
        elif mode is None:
            raise RuntimeError("temporal attention called with no call announced (begin_warmup/stream/reference/clip)")
        else:
            out = self._windows(attn, hidden_states)
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor

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
        heads = attn.heads
        d = k.shape[-1] // heads
        buffers = ctx.cache.ensure_layer(self.layer, tokens, heads, d, like=k)
        buffers.k[ctx.warmup_step, :, :, :frames] = k.view(tokens, frames, heads, d).transpose(1, 2)
        buffers.v[ctx.warmup_step, :, :, :frames] = v.view(tokens, frames, heads, d).transpose(1, 2)
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
        buffers = ctx.cache.layer(self.layer)
        if buffers.tokens != tokens:
            raise RuntimeError(f"streaming {tokens} tokens into a cache warmed with {buffers.tokens}")
        x = x.view(num_rows, tokens, -1)
        q, k_new, v_new = attn.to_q(x), attn.to_k(x), attn.to_v(x)  # (R, HW, C)
        heads = attn.heads
        channels = q.shape[-1]
        d = channels // heads
        # In place, at each row's (step, slot): the buffers keep their addresses.
        buffers.k[rows.steps, :, :, rows.write_slots] = k_new.view(num_rows, tokens, heads, d)
        buffers.v[rows.steps, :, :, rows.write_slots] = v_new.view(num_rows, tokens, heads, d)
        if rows.rows_are_all_steps:
            k_rows, v_rows = buffers.k, buffers.v  # (R, HW, heads, L, d) in place: the steady state
        else:
            k_rows, v_rows = buffers.k[rows.steps], buffers.v[rows.steps]  # fill / drain / sequential: a gather
        q = q + q_pe[rows.q_positions].unsqueeze(1)
        kpe = k_pe[rows.kv_positions].view(num_rows, -1, heads, d)  # (R, L, heads, d)
        vpe = v_pe[rows.kv_positions].view(num_rows, -1, heads, d)
        if ctx.pe_mode is PEMode.FUSED:
            out = self._stream_fused(attn, q, k_rows, v_rows, kpe, vpe, rows)
        else:
            out = self._stream_materialised(attn, q, k_rows, v_rows, kpe, vpe, rows)
        return out.view(num_rows * tokens, 1, channels)

    @staticmethod
    def _stream_fused(attn, q, k_rows, v_rows, kpe, vpe, rows: RowLayout) -> torch.Tensor:
        """softmax(q.(k + k_pe)^T * scale) . (v + v_pe) with the cache read once: q.k^T and p.v on the
        cached rows in place, plus the PE terms q.k_pe^T (a logits bias) and p.v_pe, each of logits
        size (HW x heads x L), not cache size."""
        num_rows, tokens, heads, window, d = k_rows.shape
        n = num_rows * tokens
        qh = q.view(num_rows, tokens, heads, d)
        logits = torch.matmul(qh.view(n, heads, 1, d), k_rows.view(n, heads, window, d).transpose(-1, -2))
        logits = logits.view(num_rows, tokens, heads, window) + torch.einsum("rthd,rlhd->rthl", qh, kpe)
        logits = logits * attn.scale
        if not rows.all_valid:
            logits = logits.masked_fill(rows.kv_invalid.view(num_rows, 1, 1, window), float("-inf"))
        p = torch.softmax(logits, dim=-1, dtype=torch.float32).to(q.dtype)  # fp32 softmax, as SDPA
        out = torch.matmul(p.view(n, heads, 1, window), v_rows.view(n, heads, window, d))
        return out.view(num_rows, tokens, heads, d) + torch.einsum("rthl,rlhd->rthd", p, vpe)

    def _stream_materialised(self, attn, q, k_rows, v_rows, kpe, vpe, rows: RowLayout) -> torch.Tensor:
        """The reference form: a per-layer copy cache + PE rows, then SDPA over it."""
        num_rows, tokens, heads, window, d = k_rows.shape
        n = num_rows * tokens
        k_all = k_rows + kpe.transpose(1, 2).unsqueeze(1)  # (R, HW, heads, L, d): a cache-sized copy
        v_all = v_rows + vpe.transpose(1, 2).unsqueeze(1)
        mask = None
        if not rows.all_valid:
            mask = rows.kv_valid.view(num_rows, 1, 1, 1, window).expand(num_rows, tokens, 1, 1, window)
            mask = mask.reshape(n, 1, 1, window)
        out = F.scaled_dot_product_attention(q.view(n, 1, heads, d).transpose(1, 2), k_all.view(n, heads, window, d),
                                             v_all.view(n, heads, window, d), attn_mask=mask, scale=attn.scale)
        return out.view(num_rows, tokens, heads, d)

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


def patch_motion_modules(unet: nn.Module, window: int, warmup: int, num_steps: int,
                         pe_mode: PEMode = PEMode.FUSED) -> TemporalContext:
    """Turn every motion module of a diffusers UNetMotionModel into Live2Diff streaming attention.

    Idempotent: patching an already patched UNet rebinds it to a fresh context (and a fresh cache).
    State-dict keys are unchanged, so weights can be loaded before or after patching.
    """
    check_window(window, warmup)
    transformers = motion_transformers(unet)
    if not transformers:
        raise ValueError("the UNet has no motion modules to patch")
    attentions: list[tuple[nn.Module, PositionTable]] = []
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
                attentions.append((attn, table))
    context = TemporalContext(window=window, warmup=warmup, num_steps=num_steps, num_layers=len(attentions),
                              pe_mode=pe_mode)
    for layer, (attn, table) in enumerate(attentions):
        proc = StreamingTemporalAttnProcessor(context, table, layer)
        attn.set_processor(proc)
        context.processors.append(proc)
    return context
