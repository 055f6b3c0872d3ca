"""Building what every benchmark part shares: the engine, its input frames, the GPU options."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from ..engine.accel import Accelerations as EngineAccelerations
from ..engine.accel import compile_stream_unet, stream_variants
from ..engine.factory import pick_device, pick_dtype
from ..engine.stream import EngineSettings, StreamEngine
from ..engine.temporal import StreamingTemporalAttnProcessor
from ..frames import Frame
from .config import Accelerations, BenchConfig
from .models import build_components, no_temporal_unet

log = logging.getLogger(__name__)

PROMPT = "a portrait in the style of a benchmark"


@dataclass
class BenchEngine:
    """The streaming engine under test plus the per-frame (no motion modules) UNet baseline."""

    engine: StreamEngine
    unet2d: torch.nn.Module  # shares the motion UNet's non-motion weights
    unet2d_call: torch.nn.Module  # what is called: unet2d, or its compiled form
    conv_in_residual: list  # the depth residual slot of unet2d's conv_in hook
    device: torch.device
    dtype: torch.dtype
    clip_unet_call: torch.nn.Module | None = None  # the recompute baseline's motion UNet (compiled alike)


def pattern_frames(width: int, height: int, count: int) -> list[Frame]:
    """The same moving test pattern for every variant (the daemon's pattern source renders it)."""
    from ..sources.pattern import PatternSource

    source = PatternSource(width, height, fps=30.0)
    return [Frame(pixels=np.ascontiguousarray(source.render(i)), index=i, captured_at=0.0) for i in range(count)]


def _use_classic_attention(unet: torch.nn.Module) -> None:
    """Swap every non-temporal attention to diffusers' non-SDPA processor (to measure what SDPA buys)."""
    from diffusers.models.attention_processor import AttnProcessor

    procs = {
        name: proc if isinstance(proc, StreamingTemporalAttnProcessor) else AttnProcessor()
        for name, proc in unet.attn_processors.items()
    }
    unet.set_attn_processor(procs)


def engine_accelerations(accel: Accelerations, device: torch.device) -> EngineAccelerations:
    """The bench's switches as the engine's options, resolved by the same function as ``start``."""
    return EngineAccelerations.resolve(device, None, compile=accel.compile, cuda_graphs=accel.cuda_graphs,
                                       channels_last=accel.channels_last, overlap=accel.overlap)


def bench_settings(cfg: BenchConfig) -> EngineSettings:
    return EngineSettings(
        width=cfg.resolution,
        height=cfg.resolution,
        prompt=PROMPT,
        t_index_list=cfg.t_index_list,
        num_inference_steps=50,
        window=cfg.window,
        warmup=cfg.warmup,
        seed=42,
        noise="fixed",
        pipelined=True,
    )


def build_bench_engine(cfg: BenchConfig) -> BenchEngine:
    """The engine exactly as ``start`` builds it (accelerations applied and warmed by the engine
    itself), plus the baselines' modules, compiled alike when compile is on."""
    device = pick_device(cfg.device)
    dtype = pick_dtype(device, cfg.dtype)
    accel = engine_accelerations(cfg.accel, device)
    components = build_components(cfg.size, depth=cfg.depth, weights_seed=cfg.seed)
    engine = StreamEngine(components, bench_settings(cfg), device=device, dtype=dtype, accel=accel)
    unet = components.unet
    # After the engine's channels_last, so the 2D UNet shares the converted weights instead of a copy.
    unet2d = no_temporal_unet(unet)
    if not cfg.accel.sdpa:
        _use_classic_attention(unet)
        _use_classic_attention(unet2d)
    residual: list = [None]
    unet2d.conv_in.register_forward_hook(lambda m, i, out: out if residual[0] is None else out + residual[0])
    unet2d_call: torch.nn.Module = unet2d
    clip_unet_call: torch.nn.Module = unet
    if accel.compile:
        unet2d_call = compile_stream_unet(unet2d, accel, len(stream_variants(cfg.steps, cfg.window, cfg.warmup)))
        # The recompute baseline's clip calls (frames axis; one shape per clip length).
        clip_unet_call = torch.compile(unet, backend=accel.backend, mode=accel.mode)
    log.info("bench engine: %s on %s (%s), %dpx, T=%d, L=%d, Lw=%d, %s", cfg.size, device, dtype, cfg.resolution,
             cfg.steps, cfg.window, cfg.warmup, accel.describe())
    return BenchEngine(engine, unet2d, unet2d_call, residual, device, dtype, clip_unet_call)
