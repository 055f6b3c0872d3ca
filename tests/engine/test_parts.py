"""Per-frame norm, E_cond, seeds, noise modes, frame-size errors, warmup outputs."""

import copy

import numpy as np
import pytest
import torch
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

from l2d_obs.engine.depth import DepthEncoder, depth_to_vae_input, normalise_depth
from l2d_obs.engine.temporal import PEMode, PerFrameGroupNorm, TemporalContext, patch_motion_modules
from l2d_obs.engine.tiny import build_tiny_components, build_tiny_unet
from l2d_obs.errors import FrameSizeError
from l2d_obs.frames import Frame
from tests.engine.helpers import make_engine, moving_frames, rel_err


def _motion_transformer():
    torch.manual_seed(0)
    block = AnimateDiffTransformer3D(num_attention_heads=2, attention_head_dim=8, in_channels=16, norm_num_groups=4,
                                     positional_embeddings="sinusoidal", num_positional_embeddings=32)
    for p in block.parameters():
        torch.nn.init.normal_(p, 0, 0.2)
    return block.eval()


def test_per_frame_group_norm_matches_norm_of_each_frame_alone():
    norm = PerFrameGroupNorm(4, 16)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = torch.randn(2, 16, 5, 3, 3)
    together = norm(x)
    for f in range(5):
        assert torch.allclose(together[:, :, f : f + 1], norm(x[:, :, f : f + 1]), atol=1e-6)


def test_motion_module_output_depends_on_other_frames_only_through_attention():
    frames, size = 4, 3
    x = torch.randn(frames, 16, size, size)
    y = x.clone()
    y[1:] = y[1:] * 5 + 3  # other frames, very different statistics
    stock = _motion_transformer()
    with torch.no_grad():
        leaked = (stock(x, num_frames=frames)[0] - stock(y, num_frames=frames)[0]).abs().max()
    assert leaked > 1e-3  # diffusers' joint GroupNorm lets frame 0 see the others' statistics

    patched = _motion_transformer()
    # A window where frame 0 attends only to itself: warmup of 1 frame in a clip.
    context = patch_motion_modules(torch.nn.ModuleList([patched]), window=4, warmup=1, num_steps=1)
    context.begin_clip(frames, device=torch.device("cpu"))
    with torch.no_grad():
        a = patched(x, num_frames=frames)[0]
        b = patched(y, num_frames=frames)[0]
    assert torch.equal(a, b)
    # ...while frame 2 (which attends to frames 0..2) does see them
    with torch.no_grad():
        assert not torch.allclose(patched(x, num_frames=frames)[2], patched(y, num_frames=frames)[2])


def _per_frame_norm(transformer):
    """The stock transformer with its joint GroupNorm made per-frame (the one documented difference)."""
    norm = transformer.norm
    per_frame = PerFrameGroupNorm(norm.num_groups, norm.num_channels, eps=norm.eps, affine=norm.affine)
    per_frame.load_state_dict(norm.state_dict())
    transformer.norm = per_frame
    return transformer


@pytest.mark.parametrize("call", ["clip", "warmup"])
def test_patched_transformer_equals_stock_on_several_frames_within_warmup(call):
    """With every frame in the warmup (bidirectional, positions 0..F-1), the patched motion module
    equals diffusers' stock one (stock attention + PE added to its input) over several frames."""
    torch.manual_seed(0)
    stock = _per_frame_norm(_motion_transformer())
    patched = _motion_transformer()
    patched.load_state_dict(stock.state_dict())
    frames = 4
    x = torch.randn(frames, 16, 3, 3)
    context = patch_motion_modules(torch.nn.ModuleList([patched]), window=8, warmup=frames, num_steps=1)
    if call == "clip":
        context.begin_clip(frames, device=torch.device("cpu"))
    else:
        context.begin_warmup(0, frames)  # the cache-writing path
    with torch.no_grad():
        expected, got = stock(x, num_frames=frames), patched(x, num_frames=frames)
    assert torch.allclose(expected, got, atol=1e-5)
    if call == "warmup":
        context.commit()
        assert context.cache.warmed(0)


@pytest.mark.parametrize("pe_mode", list(PEMode))
def test_streaming_attention_equals_stock_attention_on_every_frames_window(pe_mode):
    """One temporal attention, 14 frames, L=6, Lw=3: after the warmup call each frame is streamed alone
    through the KV cache; its output equals diffusers' stock attention processor run on the frames of
    its window (PE rows 0..n added to the input), over the fill, the full ring and evictions."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    from l2d_obs.engine.windows import stream_window

    torch.manual_seed(0)
    transformer = _motion_transformer()
    block = transformer.transformer_blocks[0]
    stock = copy.deepcopy(block.attn1)
    stock.set_processor(AttnProcessor2_0())
    pe = block.pos_embed.pe[0]  # (positions, C)
    context = patch_motion_modules(torch.nn.ModuleList([transformer]), window=6, warmup=3, num_steps=1,
                                   pe_mode=pe_mode)
    attn = block.attn1
    x = torch.randn(5, 14, 16)  # (HW tokens, frames, C)
    with torch.no_grad():
        context.begin_warmup(0, 3)
        warm = attn(x[:, :3])
        context.commit()
        torch.testing.assert_close(warm, stock(x[:, :3] + pe[:3]), rtol=1e-5, atol=1e-5)
        for n in range(3, 14):
            context.begin_stream([0], device=torch.device("cpu"))
            got = attn(x[:, n : n + 1])
            context.commit()
            keys = list(stream_window(6, 3, n))
            expected = stock(x[:, keys] + pe[: len(keys)])[:, -1:]
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5, msg=f"frame {n}")


def test_fused_and_materialised_pe_agree_on_random_cache_contents():
    """The fused stream attention against its reference form, every layout of the ring (masked and
    not), several rows at different steps, heads > 1."""
    torch.manual_seed(1)
    transformer = _motion_transformer()
    context = patch_motion_modules(torch.nn.ModuleList([transformer]), window=6, warmup=2, num_steps=3)
    attn = transformer.transformer_blocks[0].attn2
    x = torch.randn(7, 2, 16)
    with torch.no_grad():
        for step in range(3):
            context.begin_warmup(step, 2)
            attn(x)
            context.commit()
        buffers = context.cache.layer(1)  # attn2's layer: random contents in every slot
        buffers.k.normal_()
        buffers.v.normal_()
        for frame in range(12):
            rows = ([0, 1, 2], [1, 2], [2, 0])[frame % 3]  # the cache in place, then gathered rows
            new = torch.randn(7 * len(rows), 1, 16)
            saved = context.cache.snapshot()
            outs = {}
            for mode in PEMode:
                context.cache.restore(saved)
                context.pe_mode = mode
                context.begin_stream(rows, device=torch.device("cpu"))
                outs[mode] = attn(new)
                context.commit()
            torch.testing.assert_close(outs[PEMode.FUSED], outs[PEMode.MATERIALISED], rtol=1e-5, atol=1e-6)


def test_patching_keeps_state_dict_keys():
    unet = build_tiny_unet()
    before = set(unet.state_dict())
    patch_motion_modules(unet, window=16, warmup=8, num_steps=2)
    assert set(unet.state_dict()) == before


def test_context_rejects_warmup_not_smaller_than_window():
    with pytest.raises(ValueError):
        TemporalContext(window=8, warmup=8, num_steps=1)


def test_depth_encoder_at_init_is_a_no_op_and_trained_weights_matter():
    engine = make_engine(1, noise="fixed")
    job = engine.denoiser.start(engine.make_job(moving_frames(1)[0]))
    unet_call = engine.denoiser.call
    engine.context.begin_clip(1, device=engine.device)
    fresh = DepthEncoder(4, 32, (8, 8, 16, 16))
    depth_latent = torch.randn(1, 4, 4, 4)
    t = engine.schedule.timesteps[0]
    with torch.no_grad():
        plain = unet_call(job.z, t, None, frames_axis=True)
        with_zero_init = unet_call(job.z, t, fresh(depth_latent), frames_axis=True)
        assert torch.equal(plain, with_zero_init)
        torch.nn.init.normal_(fresh.conv_out.weight, 0, 0.05)
        a = unet_call(job.z, t, fresh(depth_latent), frames_axis=True)
        b = unet_call(job.z, t, fresh(-depth_latent), frames_axis=True)
    assert rel_err(a, plain) > 1e-4
    assert rel_err(a, b) > 1e-4


def test_depth_normalisation_is_per_frame():
    depth = torch.stack([torch.linspace(0, 1, 16).view(1, 4, 4), torch.linspace(5, 50, 16).view(1, 4, 4)])
    n = normalise_depth(depth)
    assert torch.allclose(n[0], n[1])
    assert n.min() == 0 and n.max() == 1
    vae_in = depth_to_vae_input(depth)
    assert vae_in.shape == (2, 3, 4, 4) and vae_in.min() == -1 and vae_in.max() == 1


def test_depth_on_changes_the_output():
    frames = moving_frames(10)
    with_depth = make_engine(1, depth=True).stream_latents(frames)
    without = make_engine(1, depth=False).stream_latents(frames)
    assert rel_err(with_depth[9], without[9]) > 1e-3


def _video(engine, frames):
    return np.stack([o.pixels for f in frames for o in engine.push(f)] + [o.pixels for o in engine.flush()])


@pytest.mark.parametrize("noise", ["fixed", "fresh"])
def test_same_seed_same_video_other_seed_other_video(noise):
    frames = moving_frames(12)
    a = _video(make_engine(2, seed=1, noise=noise), frames)
    b = _video(make_engine(2, seed=1, noise=noise), frames)
    c = _video(make_engine(2, seed=2, noise=noise), frames)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fixed_noise_is_the_same_for_every_frame_and_fresh_is_not():
    fixed = make_engine(2, noise="fixed")
    fresh = make_engine(2, noise="fresh")
    frames = moving_frames(2)
    assert torch.equal(fixed.make_job(frames[0]).noise, fixed.make_job(frames[1]).noise)
    assert not torch.equal(fresh.make_job(frames[0]).noise, fresh.make_job(frames[1]).noise)


def test_warmup_outputs_are_real_pictures():
    engine = make_engine(2)
    outputs = []
    for f in moving_frames(8):
        outputs += engine.push(f)
    assert len(outputs) == 8
    for out in outputs:
        assert out.pixels.shape == (32, 32, 3)
        assert out.pixels.std() > 1.0  # not a flat/black placeholder


def test_wrong_frame_size_is_one_clear_error():
    engine = make_engine(1)
    with pytest.raises(FrameSizeError, match=r"frame is 30x20 but the engine runs at 32x32.*fit"):
        engine.push(Frame(np.zeros((20, 30, 3), np.uint8), 0))
    assert engine.stats.frames_in == 0 and engine.push(moving_frames(1)[0]) == []  # engine still usable


def test_frame_type_is_checked():
    with pytest.raises(Exception, match="HxWx3 uint8"):
        Frame(np.zeros((4, 4), np.uint8), 0)


def test_tiny_components_are_reproducible():
    a = build_tiny_components(3)
    b = build_tiny_components(3)
    for (ka, va), (kb, vb) in zip(a.unet.state_dict().items(), b.unet.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
