"""A whole 'sd15' profile of tiny files in real formats -> build_sd15_components (and the engine)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from formats import (
    MOTION_HEADS,
    apply_lora_by_hand,
    lora_pairs,
    tiny_depth_encoder,
    tiny_motion_unet,
    tiny_text_encoder,
    tiny_unet2d,
    write_config_dir,
    write_kohya_lora,
    write_ldm_single_file,
    write_motion_file,
    write_peft_lora,
)

from l2d_obs.engine.components import Live2DiffComponents
from l2d_obs.engine.depth import build_tiny_dpt
from l2d_obs.errors import CheckpointError, MissingWeightsError
from l2d_obs.profiles import load_profile_file
from l2d_obs.weights.assemble import build_sd15_components, check_profile_files

LCM_SCALE, STYLE_SCALE, LCM_ALPHA = 1.0, 0.7, 4.0


@dataclass
class Bundle:
    profile_path: Path
    expected: Live2DiffComponents  # built straight from the source models, LoRAs applied by hand


def write_bundle(root: Path, *, depth: bool = True, motion_depth: bool = True) -> Bundle:
    """Every file of a profile, each in its real format, and the models they were written from."""
    from diffusers import AutoencoderTiny

    from l2d_obs.weights.assemble import new_scheduler
    from l2d_obs.weights.base import SD15_CONFIG_DIR, load_tokenizer

    root.mkdir(parents=True, exist_ok=True)
    unet, text = tiny_unet2d(), tiny_text_encoder()
    write_config_dir(root / "config")
    write_ldm_single_file(root / "dreambooth.safetensors", unet, text)
    motion_unet, depth_encoder = tiny_motion_unet(unet), tiny_depth_encoder()
    write_motion_file(root / "live2diff.ckpt", motion_unet, depth_encoder if motion_depth else None, module_prefix=True)
    models = {"unet": unet, "text_encoder": text}
    lcm_pairs, style_pairs = lora_pairs(models, rank=4, seed=20), lora_pairs(models, rank=2, seed=21)
    write_kohya_lora(root / "lcm_lora.safetensors", lcm_pairs, alpha=LCM_ALPHA)
    write_peft_lora(root / "style.safetensors", style_pairs)
    vae = AutoencoderTiny(encoder_block_out_channels=(8,) * 4, decoder_block_out_channels=(8,) * 4,
                          num_encoder_blocks=(1,) * 4, num_decoder_blocks=(1,) * 4)  # fmt: skip
    vae.save_pretrained(root / "taesd")
    dpt = build_tiny_dpt(seed=4)
    dpt.model.save_pretrained(root / "dpt")

    (root / "style.toml").write_text(textwrap.dedent(f"""\
        display_name = "Tiny files in real formats"
        prompt = "{{trigger_words}}, a test"
        trigger_words = ["tinystyle"]
        t_index_list = [30, 40]
        width = 64
        height = 64
        window = 4
        warmup = 2

        [model]
        kind = "sd15"
        base = "dreambooth.safetensors"
        base_config = "config"
        motion = "live2diff.ckpt"
        lcm_lora = "lcm_lora.safetensors"
        lcm_lora_scale = {LCM_SCALE}
        vae = "taesd"
        motion_heads = {MOTION_HEADS}
        clip_skip = 2

        [[model.loras]]
        name = "style"
        source = "style.safetensors"
        scale = {STYLE_SCALE}

        [depth]
        enabled = {str(depth).lower()}
        estimator = "dpt-hybrid"
        source = "dpt"
        """))

    apply_lora_by_hand(models, lcm_pairs, LCM_SCALE, LCM_ALPHA)
    apply_lora_by_hand(models, style_pairs, STYLE_SCALE, None)
    expected = Live2DiffComponents(
        unet=tiny_motion_unet(unet),  # same seed: the same motion weights as the file
        vae=vae.eval(),
        text_encoder=text,
        tokenizer=load_tokenizer(SD15_CONFIG_DIR / "tokenizer"),
        scheduler=new_scheduler(),
        depth_encoder=depth_encoder.eval() if depth else None,
        depth_estimator=dpt if depth else None,
        clip_skip=2,
    )
    return Bundle(root / "style.toml", expected)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Bundle:
    return write_bundle(tmp_path_factory.mktemp("bundle"))


def close_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], atol=1e-6, rtol=0, msg=k)


def test_components_equal_the_source_models(bundle):
    profile = load_profile_file(bundle.profile_path)
    assert check_profile_files(profile) == []
    got = build_sd15_components(profile)
    exp = bundle.expected
    for part in ("unet", "vae", "text_encoder", "depth_encoder"):
        close_weights(getattr(got, part), getattr(exp, part))
    close_weights(got.depth_estimator.model, exp.depth_estimator.model)
    assert got.clip_skip == 2 and got.scheduler.config.beta_schedule == "linear"

    # and they compute the same: a 3-frame UNet pass and a prompt encoding
    gen = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 3, 8, 8, generator=gen)
    ids = got.tokenizer(profile.prompt, padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        cond = got.text_encoder(ids).last_hidden_state
        cond_exp = exp.text_encoder(ids).last_hidden_state
        torch.testing.assert_close(cond, cond_exp, atol=1e-5, rtol=0)
        out = got.unet(sample, 500, encoder_hidden_states=cond.repeat(3, 1, 1)).sample
        out_exp = exp.unet(sample, 500, encoder_hidden_states=cond.repeat(3, 1, 1)).sample
    torch.testing.assert_close(out, out_exp, atol=1e-5, rtol=1e-5)


def test_engine_outputs_equal_an_engine_on_the_source_models(bundle):
    from l2d_obs.factory import build_engine
    from l2d_obs.engine.stream import EngineSettings, StreamEngine
    from l2d_obs.frames import Frame

    profile = load_profile_file(bundle.profile_path)
    loaded = build_engine(profile, device="cpu", dtype="fp32")
    reference = StreamEngine(bundle.expected, EngineSettings.from_profile(profile), device="cpu", dtype=torch.float32)
    rng = np.random.default_rng(0)
    # past warmup (2) and window (4), so eviction happens
    frames = [Frame(pixels=rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), index=i) for i in range(6)]
    # Latents, not pixels: the tiny random TAESD squashes most differences out of its pixels.
    got, expected = loaded.stream_latents(frames), reference.stream_latents(frames)
    assert len(got) == len(expected) == 6
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    out_loaded = [f for fr in frames for f in loaded.push(fr)] + loaded.flush()
    out_reference = [f for fr in frames for f in reference.push(fr)] + reference.flush()
    diff = np.abs(np.stack([f.pixels for f in out_loaded]).astype(int) - np.stack([f.pixels for f in out_reference]))
    assert len(out_loaded) == 6 and diff.max() <= 1  # uint8 rounding only


def test_depth_on_needs_flow_conv_in(tmp_path):
    b = write_bundle(tmp_path / "b", depth=True, motion_depth=False)
    with pytest.raises(CheckpointError) as exc:
        build_sd15_components(load_profile_file(b.profile_path))
    assert "live2diff.ckpt" in str(exc.value) and "flow_conv_in" in str(exc.value)


def test_depth_off_loads_a_plain_animatediff_module(tmp_path):
    b = write_bundle(tmp_path / "b", depth=False, motion_depth=False)
    got = build_sd15_components(load_profile_file(b.profile_path))
    assert got.depth_encoder is None and got.depth_estimator is None
    close_weights(got.unet, b.expected.unet)


def test_missing_local_file_is_named(bundle, tmp_path):
    text = bundle.profile_path.read_text().replace('motion = "live2diff.ckpt"', 'motion = "nowhere/live2diff.ckpt"')
    path = bundle.profile_path.parent / "broken.toml"
    path.write_text(text)
    profile = load_profile_file(path)
    problems = check_profile_files(profile)
    assert len(problems) == 1 and "model.motion" in problems[0] and "nowhere/live2diff.ckpt" in problems[0]
    with pytest.raises(MissingWeightsError) as exc:
        build_sd15_components(profile)
    assert "nowhere/live2diff.ckpt" in str(exc.value)
