"""The KV-cache streaming path equals the cache-free reference; pipelined equals sequential."""

import pytest
import torch

from l2d_obs.engine.reference import reference_latents
from l2d_obs.engine.temporal import PEMode
from tests.engine.helpers import make_engine, moving_frames, rel_err


def _reference(engine, frames):
    return reference_latents(engine.denoiser, engine.latent_jobs(frames))


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_streaming_with_cache_equals_reference(steps):
    # 40 frames with L=16, Lw=8: the recent ring wraps three times, so eviction and re-indexing matter.
    engine = make_engine(steps)
    frames = moving_frames(40)
    streamed = engine.stream_latents(frames)
    reference = _reference(engine, frames)
    assert len(streamed) == len(reference) == 40
    errors = [rel_err(s, r) for s, r in zip(streamed, reference)]
    assert max(errors) < 1e-4, f"worst frame {errors.index(max(errors))}: {max(errors):.2e}"


def test_reference_is_not_trivially_the_per_frame_model():
    """Guard against a vacuous oracle: with temporal attention, a frame's latent depends on the
    others, so streaming a frame alone differs from streaming it inside the sequence."""
    engine = make_engine(2)
    frames = moving_frames(24)
    in_sequence = _reference(engine, frames)[20]
    alone = _reference(engine, [frames[20]])[0]
    assert rel_err(alone, in_sequence) > 1e-2


def test_pipelined_equals_sequential_with_same_noise():
    frames = moving_frames(30)
    pipelined = make_engine(3, pipelined=True).stream_latents(frames)
    sequential = make_engine(3, pipelined=False).stream_latents(frames)
    for i, (p, s) in enumerate(zip(pipelined, sequential)):
        assert rel_err(p, s) < 1e-5, f"frame {i}"


def test_pipeline_lag_and_order_through_push():
    engine = make_engine(3)
    frames = moving_frames(20)
    seen = []
    for frame in frames:
        out = engine.push(frame)
        if frame.index < 7:
            assert out == []  # collecting warmup frames
        elif frame.index == 7:
            assert [f.index for f in out] == list(range(8))  # warmup frames are real outputs
        elif frame.index < 7 + 3:
            assert out == []  # the stream batch is filling: T-1 = 2 frames of lag
        else:
            assert [f.index for f in out] == [frame.index - 2]
        seen += [f.index for f in out]
    seen += [f.index for f in engine.flush()]
    assert seen == list(range(20))


def test_push_outputs_match_stream_latents_decoded():
    engine = make_engine(2)
    frames = moving_frames(14)
    outputs = [o for f in frames for o in engine.push(f)] + engine.flush()
    latents = engine.stream_latents(frames)
    for out, latent in zip(outputs, latents):
        assert (out.pixels == engine.decode_latent(latent)).all()


def test_short_stream_flush_returns_every_frame():
    engine = make_engine(2)
    frames = moving_frames(5)  # fewer than the warmup
    assert all(engine.push(f) == [] for f in frames)
    out = engine.flush()
    assert [f.index for f in out] == [0, 1, 2, 3, 4]
    # and the engine is ready for a new stream
    assert [f.index for f in engine.push(frames[0])] == []


def test_clip_mode_equals_reference_within_one_window():
    """Up to L frames, the reference windows are exactly the training mask on one clip."""
    engine = make_engine(1)
    frames = moving_frames(16)
    reference = _reference(engine, frames)
    jobs = [engine.denoiser.start(j) for j in engine.latent_jobs(frames)]
    engine.context.begin_clip(len(jobs), device=engine.device)
    z = torch.cat([j.z for j in jobs])
    cond = torch.cat([j.cond for j in jobs])
    with torch.no_grad():
        eps = engine.denoiser.call(z, engine.schedule.timesteps[0], cond, frames_axis=True)
    engine.denoiser.advance(jobs, eps)
    for i, (job, ref) in enumerate(zip(jobs, reference)):
        assert rel_err(job.denoised, ref) < 1e-5, f"frame {i}"


def test_materialised_pe_fallback_equals_the_reference_and_the_fused_form():
    """The reference form of the streaming attention (a cache + PE copy per layer) still equals the
    oracle, and the fused form (PE as a logits bias and an output term) equals it within fp32 rounding."""
    frames = moving_frames(40)
    fused = make_engine(2)
    materialised = make_engine(2)
    materialised.context.pe_mode = PEMode.MATERIALISED
    a, b = fused.stream_latents(frames), materialised.stream_latents(frames)
    reference = _reference(materialised, frames)
    assert max(rel_err(m, r) for m, r in zip(b, reference)) < 1e-4
    assert max(rel_err(f, m) for f, m in zip(a, b)) < 1e-5


def test_the_public_latent_api_streams_latents_noise_and_conditioning():
    """Research code drives the denoiser with latents alone: the same jobs give what the frame API gives."""
    engine = make_engine(3)
    frames = moving_frames(14)
    jobs = engine.latent_jobs(frames)  # latent, noise, depth conditioning per frame
    done = engine.denoiser.stream(jobs)
    assert [j.index for j in done] == list(range(14)) and all(j.step == 3 for j in done)
    for job, latent in zip(done, engine.stream_latents(frames)):
        assert torch.equal(job.denoised, latent)
