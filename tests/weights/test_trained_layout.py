"""What `l2d-obs train` writes must be what the loaders read: the official motion-checkpoint layout
round-trips, `package:` sources resolve inside the package, and a few-step base needs no LCM-LoRA."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from l2d_obs.errors import ConfigError, ProfileError
from l2d_obs.profiles import parse_profile
from l2d_obs.weights.motion import map_original_motion_checkpoint, new_motion_unet, to_original_motion_checkpoint
from l2d_obs.weights.plan import profile_requirements
from l2d_obs.weights.sources import PACKAGE_DATA_DIR, LocalSource, parse_source


def _small_unet2d():
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), block_out_channels=(16, 32), layers_per_block=1,
        norm_num_groups=8, cross_attention_dim=16, attention_head_dim=8,
    )  # fmt: skip


def test_new_motion_unet_starts_as_the_image_model():
    unet2d = _small_unet2d()
    motion = new_motion_unet(unet2d, num_heads=2, max_seq_length=24)
    x = torch.randn(1, 4, 3, 16, 16)
    text = torch.randn(3, 77, 16)
    with torch.no_grad():
        a = motion(x, torch.tensor([199]), encoder_hidden_states=text).sample[0].permute(1, 0, 2, 3)
        b = unet2d(x[0].permute(1, 0, 2, 3), torch.tensor([199]), encoder_hidden_states=text).sample
    assert torch.allclose(a, b, atol=1e-5)


def test_official_layout_round_trips():
    motion = new_motion_unet(_small_unet2d(), num_heads=2, max_seq_length=24)
    for p in motion.parameters():
        p.data.normal_()
    state = motion.state_dict()
    depth = {"conv_in.weight": torch.randn(8, 4, 3, 3), "conv_out.bias": torch.randn(16)}
    original = to_original_motion_checkpoint(state, depth)
    assert all(".temporal_transformer." in k or k.startswith("flow_conv_in.") for k in original)
    back = map_original_motion_checkpoint(original, Path("x.safetensors"))
    motion_keys = {k for k in state if ".motion_modules." in k}
    assert set(back.unet_state) == motion_keys
    assert all(torch.equal(back.unet_state[k], state[k]) for k in motion_keys)
    assert back.depth_state.keys() == depth.keys() and back.max_seq_length == 24


def test_package_source():
    src = parse_source("package:models/toon/vae")
    assert isinstance(src, LocalSource) and src.path == PACKAGE_DATA_DIR / "models" / "toon" / "vae"
    for bad in ("package:", "package:../etc/passwd", "package:models//x"):
        with pytest.raises(ConfigError):
            parse_source(bad)


def _profile(**model) -> dict:
    return {"prompt": "p", "model": {"kind": "sd15", "base": "base", "motion": "m.safetensors", "vae": "vae", **model},
            "depth": {"enabled": True, "estimator": "dpt", "source": "depth"}}  # fmt: skip


def test_a_few_step_base_needs_no_lcm_lora(tmp_path):
    roles = [r.role for r in profile_requirements(parse_profile(_profile(lcm_lora="none"), tmp_path / "p.toml", "p"))]
    assert roles == ["base", "motion", "vae", "depth"]
    roles = [r.role for r in profile_requirements(parse_profile(_profile(), tmp_path / "p.toml", "p"))]
    assert "lcm_lora" in roles


def test_dpt_estimator_needs_a_source(tmp_path):
    data = _profile(lcm_lora="none")
    del data["depth"]["source"]
    with pytest.raises(ProfileError, match="depth.source"):
        parse_profile(data, tmp_path / "p.toml", "p")
