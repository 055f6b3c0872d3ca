"""Broken or foreign files: one-line errors naming the file and the problem; loaded models stay intact."""

from __future__ import annotations

import argparse

import pytest
import torch
from formats import (
    MOTION_HEADS,
    lora_pairs,
    tiny_depth_encoder,
    tiny_motion_unet,
    tiny_text_encoder,
    tiny_unet2d,
    write_config_dir,
    write_kohya_lora,
    write_ldm_single_file,
    write_motion_file,
)
from safetensors.torch import save_file

from l2d_obs.errors import CheckpointError
from l2d_obs.weights.base import load_base
from l2d_obs.weights.checkpoint import load_checked, read_state_dict
from l2d_obs.weights.lora import fuse_loras, parse_lora
from l2d_obs.weights.motion import build_motion_unet, map_original_motion_checkpoint


def one_line_naming(exc: pytest.ExceptionInfo, path, *words: str) -> None:
    message = str(exc.value)
    assert "\n" not in message
    assert str(path) in message
    for word in words:
        assert word in message, message


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_unchanged(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_truncated_file(tmp_path, suffix):
    good = write_ldm_single_file(tmp_path / f"good{suffix}", tiny_unet2d(), tiny_text_encoder())
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError) as exc:
        read_state_dict(cut)
    one_line_naming(exc, cut, "truncated or corrupt")


def test_pickle_with_code_is_refused(tmp_path):
    evil = tmp_path / "evil.ckpt"
    # like a Lightning checkpoint that pickles a training callback object next to the weights
    torch.save({"state_dict": {"w": torch.zeros(1)}, "callback": argparse.Namespace(lr=1e-4)}, str(evil))
    with pytest.raises(CheckpointError) as exc:
        read_state_dict(evil)
    one_line_naming(exc, evil, "refused", ".safetensors")


def test_checkpoint_of_another_architecture(tmp_path):
    config = write_config_dir(tmp_path / "config")
    wider = write_ldm_single_file(tmp_path / "wider.safetensors", tiny_unet2d(block_out_channels=(32, 48)), tiny_text_encoder())
    with pytest.raises(CheckpointError) as exc:
        load_base(wider, config)
    one_line_naming(exc, wider, "wrong shape")

    sdxl = tmp_path / "sdxl.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1),
               "conditioner.embedders.0.transformer.text_model.x": torch.zeros(1)}, str(sdxl))  # fmt: skip
    with pytest.raises(CheckpointError) as exc:
        load_base(sdxl, config)
    one_line_naming(exc, sdxl, "SDXL")

    lora = write_kohya_lora(tmp_path / "lora.safetensors", lora_pairs({"unet": tiny_unet2d(), "text_encoder": tiny_text_encoder()}, 2, 0), 1.0)
    with pytest.raises(CheckpointError) as exc:
        load_base(lora, config)
    one_line_naming(exc, lora, "not a Stable Diffusion checkpoint", "LoRA")


@pytest.mark.parametrize(
    "extra_key",
    ["model.diffusion_model.input_blocks.1.0.extra_layer.weight", "model.diffusion_model.zero_convs.0.weight",
     "controlnet.zero_convs.0.weight"],
)  # fmt: skip
def test_extra_keys_in_a_single_file_are_listed(tmp_path, extra_key):
    config = write_config_dir(tmp_path / "config")
    good = write_ldm_single_file(tmp_path / "good.safetensors", tiny_unet2d(), tiny_text_encoder())
    state = read_state_dict(good)
    state[extra_key] = torch.zeros(3)
    bad = tmp_path / "extra.safetensors"
    save_file(state, str(bad))
    with pytest.raises(CheckpointError) as exc:
        load_base(bad, config)
    one_line_naming(exc, bad, "unexpected key", extra_key.split(".")[-2])


def test_missing_keys_in_a_single_file_are_listed(tmp_path):
    config = write_config_dir(tmp_path / "config")
    good = write_ldm_single_file(tmp_path / "good.safetensors", tiny_unet2d(), tiny_text_encoder())
    state = {k: v for k, v in read_state_dict(good).items() if "encoder.layers.1.mlp" not in k}
    bad = tmp_path / "missing.safetensors"
    save_file(state, str(bad))
    with pytest.raises(CheckpointError) as exc:
        load_base(bad, config)
    one_line_naming(exc, bad, "4 missing key(s)", "encoder.layers.1.mlp.fc1.weight")


def test_lora_for_another_base_leaves_models_intact(tmp_path):
    unet, text = tiny_unet2d(), tiny_text_encoder()
    good = write_kohya_lora(tmp_path / "good.safetensors", lora_pairs({"unet": unet, "text_encoder": text}, 2, 1), 1.0)
    # made for a model with wider attention: every UNet pair has the wrong size
    other = {"unet": tiny_unet2d(block_out_channels=(48, 64), norm_num_groups=8), "text_encoder": text}
    foreign = write_kohya_lora(tmp_path / "sdxl_style.safetensors", lora_pairs(other, 2, 2), 1.0)
    before_unet, before_text = snapshot(unet), snapshot(text)
    loras = [(parse_lora(read_state_dict(good), good), 1.0), (parse_lora(read_state_dict(foreign), foreign), 1.0)]
    with pytest.raises(CheckpointError) as exc:
        fuse_loras({"unet": unet, "text_encoder": text}, loras)
    one_line_naming(exc, foreign, "does not fit", "wrong shape")
    assert_unchanged(unet, before_unet)  # the good LoRA listed first was not applied either
    assert_unchanged(text, before_text)

    renamed = tmp_path / "renamed.safetensors"
    save_file({"lora_unet_input_blocks_1_1_proj_in.lora_down.weight": torch.zeros(2, 32, 1, 1),
               "lora_unet_input_blocks_1_1_proj_in.lora_up.weight": torch.zeros(32, 2, 1, 1)}, str(renamed))  # fmt: skip
    with pytest.raises(CheckpointError) as exc:
        fuse_loras({"unet": unet, "text_encoder": text}, [(parse_lora(read_state_dict(renamed), renamed), 1.0)])
    one_line_naming(exc, renamed, "not in the model", "input_blocks_1_1_proj_in")
    assert_unchanged(unet, before_unet)


def test_unknown_lora_format(tmp_path):
    loha = tmp_path / "loha.safetensors"
    save_file({"lora_unet_x.hada_w1_a": torch.zeros(2, 2)}, str(loha))
    with pytest.raises(CheckpointError) as exc:
        parse_lora(read_state_dict(loha), loha)
    one_line_naming(exc, loha, "hada_w1_a")


def test_motion_checkpoint_with_extra_or_missing_keys(tmp_path):
    unet = tiny_unet2d()
    good = write_motion_file(tmp_path / "live2diff.ckpt", tiny_motion_unet(unet), tiny_depth_encoder())
    state = read_state_dict(good)

    extra = dict(state)
    extra["down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.lora_layer.weight"] = torch.zeros(1)
    extra["some_head.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as exc:
        map_original_motion_checkpoint(extra, good)
    one_line_naming(exc, good, "2 unexpected key(s)", "lora_layer", "some_head.weight")

    missing = {k: v for k, v in state.items() if "up_blocks.1.motion_modules.1." not in k}
    weights = map_original_motion_checkpoint(missing, good)
    target = tiny_unet2d()
    before = snapshot(target)
    with pytest.raises(CheckpointError) as exc:
        build_motion_unet(target, weights, MOTION_HEADS)
    one_line_naming(exc, good, "missing key(s)", "up_blocks.1.motion_modules.1.")
    assert_unchanged(target, before)

    wrong_unet = tiny_unet2d(block_out_channels=(32, 48))
    with pytest.raises(CheckpointError) as exc:
        build_motion_unet(wrong_unet, map_original_motion_checkpoint(state, good), MOTION_HEADS)
    one_line_naming(exc, good, "wrong shape")


def test_bad_state_dict_never_half_loads(tmp_path):
    encoder = tiny_depth_encoder()
    before = snapshot(encoder)
    state = {k: torch.ones_like(v) for k, v in encoder.state_dict().items()}
    state["conv_out.weight"] = torch.ones(7, 7)  # the last tensor is wrong: nothing may be copied
    with pytest.raises(CheckpointError) as exc:
        load_checked(encoder, state, tmp_path / "flow.ckpt", "depth encoder")
    one_line_naming(exc, tmp_path / "flow.ckpt", "conv_out.weight (7, 7)")
    assert_unchanged(encoder, before)
