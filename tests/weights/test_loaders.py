"""Each real format, written from tiny random models, loads back through the real loaders unchanged."""

from __future__ import annotations

import torch
from formats import (
    LORA_TARGETS_UNET,
    MOTION_HEADS,
    apply_lora_by_hand,
    diffusers_unet_to_ldm,
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

from l2d_obs.weights.base import SD15_CONFIG_DIR, convert_ldm_checkpoint, load_base, load_tokenizer
from l2d_obs.weights.checkpoint import read_state_dict
from l2d_obs.weights.lora import fuse_loras, parse_lora
from l2d_obs.weights.motion import build_motion_unet, map_original_motion_checkpoint


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module, atol: float = 0.0) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].shape == sb[key].shape, key
        if atol:
            torch.testing.assert_close(sa[key], sb[key], atol=atol, rtol=0, msg=key)
        else:
            assert torch.equal(sa[key], sb[key]), key


def test_single_file_safetensors_and_ckpt_load_the_source_weights(tmp_path):
    unet, text = tiny_unet2d(), tiny_text_encoder()
    config = write_config_dir(tmp_path / "config")
    for name in ("model.safetensors", "model.ckpt"):
        base = load_base(write_ldm_single_file(tmp_path / name, unet, text), config)
        assert_same_weights(base.unet, unet)
        assert_same_weights(base.text_encoder, text)
        ids = base.tokenizer("a photo of a cat").input_ids
        assert ids == [49406, 320, 1125, 539, 320, 2368, 49407]  # CLIP's ids, from the shipped files


def test_diffusers_folder_loads_the_source_weights(tmp_path):
    unet, text = tiny_unet2d(seed=5), tiny_text_encoder(seed=6)
    unet.save_pretrained(tmp_path / "sd" / "unet")
    text.save_pretrained(tmp_path / "sd" / "text_encoder")
    base = load_base(tmp_path / "sd")  # no tokenizer/ in the folder: the shipped one is used
    assert_same_weights(base.unet, unet)
    assert_same_weights(base.text_encoder, text)
    assert base.tokenizer.model_max_length == 77


def test_shipped_sd15_config_matches_the_real_architecture():
    """The shipped configs build SD1.5's UNet and CLIP-L text encoder (parameter counts of the real models),
    and the LDM -> diffusers key mapping covers every tensor at real size (meta tensors: no memory)."""
    import json

    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    config = json.loads((SD15_CONFIG_DIR / "unet" / "config.json").read_text())
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(config)
        text = CLIPTextModel(CLIPTextConfig.from_json_file(str(SD15_CONFIG_DIR / "text_encoder" / "config.json")))
    assert sum(p.numel() for p in unet.parameters()) == 859_520_964
    assert sum(p.numel() for p in text.parameters()) == 123_060_480
    ldm = diffusers_unet_to_ldm(unet.state_dict(), config)
    ldm.update({f"cond_stage_model.transformer.text_model.{k}": v for k, v in text.state_dict().items()})
    unet_state, clip_state = convert_ldm_checkpoint(ldm, SD15_CONFIG_DIR / "x.safetensors", config)
    assert set(unet_state) == set(unet.state_dict())
    assert len(clip_state) == len(text.state_dict())
    assert len(load_tokenizer(SD15_CONFIG_DIR / "tokenizer")) == 49408


def test_live2diff_checkpoint_maps_motion_modules_and_flow_conv_in(tmp_path):
    unet = tiny_unet2d()
    motion_unet, depth = tiny_motion_unet(unet), tiny_depth_encoder()
    file = write_motion_file(tmp_path / "live2diff.ckpt", motion_unet, depth, module_prefix=True)
    weights = map_original_motion_checkpoint(read_state_dict(file), file)
    assert weights.max_seq_length == 24 and not weights.has_mid_block
    loaded = build_motion_unet(tiny_unet2d(), weights, MOTION_HEADS)
    assert_same_weights(loaded, motion_unet)
    assert set(weights.depth_state) == set(depth.state_dict())
    assert all(torch.equal(weights.depth_state[k], v) for k, v in depth.state_dict().items())


def test_original_animatediff_module_with_mid_block_agrees_with_diffusers_converter(tmp_path):
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    unet = tiny_unet2d()
    motion_unet = tiny_motion_unet(unet, mid_block=True, max_seq_length=32)
    file = write_motion_file(tmp_path / "mm_sd_v15_v2.safetensors", motion_unet)
    state = read_state_dict(file)
    weights = map_original_motion_checkpoint(state, file)
    assert weights.has_mid_block and weights.max_seq_length == 32
    assert_same_weights(build_motion_unet(unet, weights, MOTION_HEADS), motion_unet)
    # diffusers' own converter reads the same file to the same names (it keeps PE tables out).
    theirs = convert_animatediff_checkpoint_to_diffusers(dict(state))
    ours = {k: v for k, v in weights.unet_state.items() if not k.endswith("pos_embed.pe")}
    assert {k for k in theirs if not k.endswith(".pe")} == set(ours)
    assert all(torch.equal(theirs[k], v) for k, v in ours.items())


def test_kohya_and_peft_loras_fuse_with_their_scales(tmp_path):
    unet, text = tiny_unet2d(), tiny_text_encoder()
    models = {"unet": unet, "text_encoder": text}
    kohya_pairs = lora_pairs(models, rank=4, seed=10)
    peft_pairs = lora_pairs(models, rank=2, seed=11)
    kohya = write_kohya_lora(tmp_path / "style_kohya.safetensors", kohya_pairs, alpha=2.0)
    peft = write_peft_lora(tmp_path / "pytorch_lora_weights.safetensors", peft_pairs)

    fuse_loras(models, [(parse_lora(read_state_dict(kohya), kohya), 0.8), (parse_lora(read_state_dict(peft), peft), 0.5)])

    expected_unet, expected_text = tiny_unet2d(), tiny_text_encoder()
    expected = {"unet": expected_unet, "text_encoder": expected_text}
    apply_lora_by_hand(expected, kohya_pairs, 0.8, 2.0)
    apply_lora_by_hand(expected, peft_pairs, 0.5, None)
    assert_same_weights(unet, expected_unet, atol=1e-6)
    assert_same_weights(text, expected_text, atol=1e-6)
    # the fuse really changed the target layers
    untouched = dict(tiny_unet2d().named_modules())[LORA_TARGETS_UNET[0]].weight
    assert not torch.allclose(dict(unet.named_modules())[LORA_TARGETS_UNET[0]].weight, untouched)


def test_taesd_and_depth_estimators_load_from_folders(tmp_path):
    from diffusers import AutoencoderTiny
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation

    from l2d_obs.engine.depth import build_tiny_dpt
    from l2d_obs.weights.aux_models import load_depth_estimator, load_taesd

    vae = AutoencoderTiny(encoder_block_out_channels=(8,) * 4, decoder_block_out_channels=(8,) * 4,
                          num_encoder_blocks=(1,) * 4, num_decoder_blocks=(1,) * 4)  # fmt: skip
    vae.save_pretrained(tmp_path / "taesd")
    assert_same_weights(load_taesd(tmp_path / "taesd"), vae)

    dpt = build_tiny_dpt(seed=3)
    dpt.model.save_pretrained(tmp_path / "dpt")
    loaded = load_depth_estimator(tmp_path / "dpt")
    assert_same_weights(loaded.model, dpt.model)
    images = torch.rand(2, 3, 40, 48)
    assert torch.equal(loaded.estimate(images), dpt.estimate(images))

    config = DepthAnythingConfig(
        backbone_config={"model_type": "dinov2", "hidden_size": 16, "num_hidden_layers": 4, "num_attention_heads": 2,
                         "intermediate_size": 32, "image_size": 28, "patch_size": 14, "out_indices": [1, 2, 3, 4],
                         "reshape_hidden_states": False},
        neck_hidden_sizes=[8, 8, 8, 8], fusion_hidden_size=8, head_hidden_size=8, reassemble_hidden_size=16,
        patch_size=14,
    )  # fmt: skip
    torch.manual_seed(0)
    depth_anything = DepthAnythingForDepthEstimation(config).eval()
    depth_anything.save_pretrained(tmp_path / "da")
    loaded = load_depth_estimator(tmp_path / "da")
    assert loaded.input_size == (518, 518)
    assert_same_weights(loaded.model, depth_anything)


def test_real_size_live2diff_layout_maps_onto_the_sd15_motion_unet():
    """At SD1.5 size (meta tensors): 20 motion modules, 40 temporal attentions, PE length 24, no mid block,
    E_cond 4->...->320; the original names written from it map back onto exactly its keys."""
    import json

    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel
    from formats import diffusers_motion_to_original

    from l2d_obs.engine.depth import DepthEncoder

    config = json.loads((SD15_CONFIG_DIR / "unet" / "config.json").read_text())
    with torch.device("meta"):
        unet2d = UNet2DConditionModel.from_config(config)
        adapter = MotionAdapter(motion_max_seq_length=24, use_motion_mid_block=False)
        motion_unet = UNetMotionModel.from_unet2d(unet2d, adapter, load_weights=False)
        depth = DepthEncoder()
    original = diffusers_motion_to_original(motion_unet.state_dict())
    # the PE tables are compared by value, which meta tensors cannot do: give them real (small) values
    original = {k: torch.zeros(v.shape) if k.endswith(".pe") else v for k, v in original.items()}
    original.update({f"flow_conv_in.{k}": v for k, v in depth.state_dict().items()})
    weights = map_original_motion_checkpoint(original, SD15_CONFIG_DIR / "live2diff.ckpt")
    expected = {k for k in motion_unet.state_dict() if ".motion_modules." in k}
    assert set(weights.unet_state) == expected
    assert len({k.split(".temporal_transformer.")[0] for k in original if "temporal_transformer" in k}) == 20
    assert sum(k.endswith("attention_blocks.0.to_q.weight") or k.endswith("attention_blocks.1.to_q.weight") for k in original) == 40
    assert weights.max_seq_length == 24 and not weights.has_mid_block
    assert weights.depth_state["conv_out.weight"].shape == (320, 256, 3, 3)
