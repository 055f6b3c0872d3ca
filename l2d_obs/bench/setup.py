"""Building what every benchmark part shares: the engine, its input frames, the GPU options."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

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


def _compile(module: torch.nn.Module, accel: Accelerations) -> torch.nn.Module:
    # "reduce-overhead" is torch.compile's CUDA-graphs mode.
    mode = "reduce-overhead" if accel.cuda_graphs else "default"
    return torch.compile(module, mode=mode)


def build_bench_engine(cfg: BenchConfig) -> BenchEngine:
    device = pick_device(cfg.device)
    dtype = pick_dtype(device, cfg.dtype)
    accel = cfg.accel
    components = build_components(cfg.size, depth=cfg.depth, weights_seed=cfg.seed)
    settings = EngineSettings(
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
    engine = StreamEngine(components, settings, device=device, dtype=dtype)
    unet = components.unet
    if accel.channels_last:
        unet.to(memory_format=torch.channels_last)
        components.vae.to(memory_format=torch.channels_last)
    # After channels_last, so the 2D UNet shares the converted weights instead of holding a copy.
    unet2d = no_temporal_unet(unet)
    if not accel.sdpa:
        _use_classic_attention(unet)
        _use_classic_attention(unet2d)
    residual: list = [None]
    unet2d.conv_in.register_forward_hook(lambda m, i, out: out if residual[0] is None else out + residual[0])
    unet2d_call: torch.nn.Module = unet2d
    if accel.compile or accel.cuda_graphs:
        engine.denoiser.call.unet = _compile(unet, accel)
        unet2d_call = _compile(unet2d, accel)
    log.info("bench engine: %s on %s (%s), %dpx, T=%d, L=%d, Lw=%d, %s", cfg.size, device, dtype, cfg.resolution,
             cfg.steps, cfg.window, cfg.warmup, accel)
    return BenchEngine(engine, unet2d, unet2d_call, residual, device, dtype)
