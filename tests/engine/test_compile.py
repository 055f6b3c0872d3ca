"""The engine's accelerations: resolved from device, profile and command line, applied by build_engine,
every compiled variant warmed at build; the compiled stream call is one graph per variant, never
recompiles mid-stream and equals eager (dynamo with a counting eager backend, so it runs on a CPU)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from l2d_obs.bench.graphs import measure_compiled_stream
from l2d_obs.engine.accel import Accelerations, stream_variants
from l2d_obs.factory import build_engine
from l2d_obs.errors import ConfigError
from l2d_obs.profiles import EngineSpec, load_profile
from tests.engine.helpers import make_engine, moving_frames


def test_accelerations_default_on_with_cuda_off_on_cpu_and_are_switchable():
    assert Accelerations.resolve("cpu") == Accelerations()
    cuda = Accelerations.resolve("cuda")
    assert cuda.compile and cuda.cuda_graphs and cuda.channels_last
    # the profile's [engine] table, then the command line
    spec = EngineSpec(compile=False, channels_last=None)
    off = Accelerations.resolve("cuda", spec)
    assert not off.compile and not off.cuda_graphs and off.channels_last  # compile off takes its graphs mode along
    assert Accelerations.resolve("cuda", spec, compile=True).compile
    assert not Accelerations.resolve("cuda", None, cuda_graphs=False).cuda_graphs
    assert Accelerations.resolve("cpu", EngineSpec(channels_last=True)).channels_last
    assert Accelerations.resolve("cpu", compile=True).compile  # compile on a CPU is allowed (inductor or eager)
    with pytest.raises(ConfigError, match="cuda_graphs needs a CUDA device"):
        Accelerations.resolve("cpu", EngineSpec(compile=True, cuda_graphs=True))
    with pytest.raises(ConfigError, match="needs compile on"):
        Accelerations.resolve("cuda", None, compile=False, cuda_graphs=True)


def test_profile_engine_table_takes_the_acceleration_keys(tmp_path):
    from l2d_obs.profiles import load_profile_file

    text = (load_profile("tiny").source_path.read_text() + "\n[engine]\ncompile = true\nchannels_last = false\n")
    path = tmp_path / "fast.toml"
    path.write_text(text)
    profile = load_profile_file(path)
    assert profile.engine.compile is True and profile.engine.channels_last is False and profile.engine.cuda_graphs is None
    path.write_text(text.replace("compile = true", 'compile = "yes"'))
    with pytest.raises(Exception, match="engine.compile"):
        load_profile_file(path)


def test_stream_variants_are_declared_and_bounded():
    assert stream_variants(2, 16, 8) == [(1, True), (2, True), (1, False), (2, False)]
    assert len(stream_variants(4, 16, 8)) == 8
    assert stream_variants(3, 16, 8, pipelined=False) == [(1, True), (1, False)]


@pytest.fixture(scope="module")
def compiled_run():
    """The tiny profile through build_engine with compile on (counting eager backend), 40 frames."""
    torch.set_num_threads(1)
    profile = replace(load_profile("tiny"), noise="fresh")
    messages: list[str] = []

    def build(accel):
        return build_engine(profile, device="cpu", dtype="fp32", progress=lambda step, f: messages.append(step),
                            accel=accel, width=32, height=32)

    frames = moving_frames(40)
    figures, engine, outputs = measure_compiled_stream(build, frames)
    eager = build_engine(profile, device="cpu", dtype="fp32", width=32, height=32)
    expected = [o for f in frames for o in eager.push(f)] + eager.flush()
    latents_c = engine.stream_latents(frames)
    latents_e = eager.stream_latents(frames)
    return figures, messages, outputs, expected, latents_c, latents_e, engine


def test_build_engine_warms_every_compiled_variant_with_progress(compiled_run):
    figures, messages, *_ , engine = compiled_run
    assert engine.accel.compile and engine.denoiser.call.stream_unet is not None
    assert any(m.startswith("compiling: ") for m in messages)
    assert {"compiling: warmup", "compiling: pipeline fill", "compiling: steady state", "compiling: drain"} <= set(messages)
    assert engine.stats.frames_in == 40  # the warm pass leaves no trace in the statistics


def test_compiled_stream_call_is_one_graph_per_variant_with_no_recompiles(compiled_run):
    figures = compiled_run[0]
    assert figures.frames >= 40
    assert figures.graph_breaks == 0
    assert figures.graphs_at_warmup == figures.variants  # exactly one graph per declared variant
    assert figures.graphs_per_variant == 1.0
    assert figures.recompiles_after_warmup == 0


def test_compiled_output_equals_eager_for_40_frames(compiled_run):
    _, _, outputs, expected, latents_c, latents_e, _ = compiled_run
    assert [o.index for o in outputs] == [o.index for o in expected] == list(range(40))
    worst = max(float((a - b).abs().max()) for a, b in zip(latents_c, latents_e))
    assert worst < 1e-5, worst
    pixel = max(int(np.abs(a.pixels.astype(int) - b.pixels.astype(int)).max()) for a, b in zip(outputs, expected))
    assert pixel <= 1


def test_eager_engine_has_no_compiled_call():
    engine = make_engine(1)
    assert not engine.accel.compile and engine.denoiser.call.stream_unet is None
