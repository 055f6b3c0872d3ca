"""The two baselines compute what they claim (tiny size, fp32, seconds)."""

from __future__ import annotations

import pytest
import torch

from l2d_obs.bench.config import BenchConfig, t_index_list_for
from l2d_obs.bench.engine_bench import EngineBench
from l2d_obs.bench.models import build_components, no_temporal_unet
from l2d_obs.bench.setup import build_bench_engine, pattern_frames
from l2d_obs.bench.timing import percentile
from l2d_obs.engine.temporal import motion_transformers


def test_recompute_matches_streaming_until_the_first_eviction():
    # Before any frame leaves the window, re-running the clip with the training mask gives exactly
    # what the KV cache gives; the baseline is a faithful "without cache" path, not another model.
    cfg = BenchConfig(size="tiny", window=6, warmup=3, frames=1, repeats=1, parts=("engine",))
    b = build_bench_engine(cfg)
    frames = pattern_frames(cfg.resolution, cfg.resolution, cfg.window + 1)
    bench = EngineBench(b, cfg, frames)
    with torch.no_grad():
        bench.run_recompute()
    streamed = b.engine.stream_latents(frames)  # causal: frame i's latent depends on frames <= i only
    for i in range(cfg.window):
        torch.testing.assert_close(bench.recompute_latents[i], streamed[i], rtol=1e-4, atol=1e-4)
    # From the first eviction on the two differ (DESIGN §3): the benchmark compares cost only.
    assert not torch.allclose(bench.recompute_latents[cfg.window], streamed[cfg.window], atol=1e-4)


def test_no_temporal_unet_is_the_motion_unet_without_motion():
    components = build_components("tiny", depth=False)
    unet = components.unet
    for transformer in motion_transformers(unet):  # a zero proj_out makes every motion module the identity
        torch.nn.init.zeros_(transformer.proj_out.weight)
        torch.nn.init.zeros_(transformer.proj_out.bias)
    unet2d = no_temporal_unet(unet)
    assert all(p.data_ptr() in {q.data_ptr() for q in unet.parameters()} for p in unet2d.parameters())
    z = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    text = torch.randn(3, 77, unet.config.cross_attention_dim, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([500, 300, 100])
    with torch.no_grad():
        flat = unet2d(z, t, encoder_hidden_states=text).sample
        motion = unet(z.unsqueeze(2), t, encoder_hidden_states=text).sample[:, :, 0]
    torch.testing.assert_close(flat, motion, rtol=1e-5, atol=1e-5)


def test_small_size_builds_quickly_with_the_sd15_layout():
    components = build_components("small")
    cfg = components.unet.config
    assert len(cfg.block_out_channels) == 4 and cfg.motion_max_seq_length == 24
    assert cfg.use_motion_mid_block is False


def test_config_helpers():
    assert t_index_list_for(1) == (35,)
    assert t_index_list_for(2) == (30, 45)
    assert t_index_list_for(4) == (30, 35, 40, 45)
    with pytest.raises(ValueError):
        BenchConfig(resolution=60)
    with pytest.raises(ValueError):
        BenchConfig(parts=("engine", "gpu"))
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 95) == pytest.approx(1.95)


def test_full_depth_parts_have_the_real_architecture():
    from l2d_obs.bench.models import build_dpt_hybrid
    from l2d_obs.engine.depth import DepthEncoder

    dpt = build_dpt_hybrid()
    config = dpt.model.config
    assert config.is_hybrid and dpt.input_size == (384, 384)
    assert 1.1e8 < sum(p.numel() for p in dpt.model.parameters()) < 1.4e8  # MiDaS DPT-hybrid ~123M
    e_cond = DepthEncoder(4, 320)  # the official ladder 4 -> ... -> 320
    assert e_cond.conv_out.out_channels == 320


def test_bench_builds_its_engine_through_the_engines_accelerations():
    from l2d_obs.bench.setup import build_bench_engine, engine_accelerations
    from l2d_obs.engine.accel import Accelerations as EngineAccelerations

    cfg = BenchConfig(size="tiny", window=6, warmup=3, frames=1, repeats=1, parts=("engine",))
    bench = build_bench_engine(cfg)
    assert bench.engine.accel == engine_accelerations(cfg.accel, bench.device) == EngineAccelerations()
    assert bench.engine.denoiser.call.unet is bench.engine.components.unet  # nothing patched from outside
    assert bench.engine.denoiser.call.stream_unet is None  # compile off on a CPU, as `start` would run it
