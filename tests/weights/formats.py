"""Tiny random models and writers for each real checkpoint format, for the loader tests.

The writers go from diffusers names to the original formats (LDM single file, original AnimateDiff /
Live2Diff UNet3D names, kohya and peft LoRA keys) independently of the loaders under test, so a
round trip through the loaders checks both directions of the key mapping.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from l2d_obs.engine.depth import DepthEncoder
from l2d_obs.weights.base import SD15_CONFIG_DIR

UNET_CONFIG = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(32, 64),
    layers_per_block=1,
    cross_attention_dim=32,
    attention_head_dim=8,
    norm_num_groups=8,
)
# SD1.5's tokenizer has 49408 ids, so the tiny text encoder keeps the real vocabulary size.
CLIP_CONFIG = dict(
    vocab_size=49408, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
    max_position_embeddings=77, projection_dim=32, hidden_act="quick_gelu",
)  # fmt: skip
MOTION_HEADS = 2


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randomise(model: torch.nn.Module, seed: int, scale: float = 0.2) -> torch.nn.Module:
    """Non-trivial weights everywhere (diffusers zero-inits some layers, which would hide mapping bugs)."""
    gen = seeded(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return model


def tiny_unet2d(seed: int = 0, **overrides):
    from diffusers import UNet2DConditionModel

    return randomise(UNet2DConditionModel(**{**UNET_CONFIG, **overrides}), seed).eval()


def tiny_text_encoder(seed: int = 1):
    from transformers import CLIPTextConfig, CLIPTextModel

    return randomise(CLIPTextModel(CLIPTextConfig(**CLIP_CONFIG)), seed).eval()


def tiny_motion_unet(unet2d, seed: int = 2, mid_block: bool = False, max_seq_length: int = 24):
    from diffusers import MotionAdapter, UNetMotionModel

    adapter = MotionAdapter(
        block_out_channels=UNET_CONFIG["block_out_channels"],
        motion_layers_per_block=UNET_CONFIG["layers_per_block"],
        motion_num_attention_heads=MOTION_HEADS,
        motion_norm_num_groups=8,
        motion_max_seq_length=max_seq_length,
        use_motion_mid_block=mid_block,
    )
    model = UNetMotionModel.from_unet2d(unet2d, adapter)
    gen = seeded(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".motion_modules." in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return model.eval()


def write_config_dir(root: Path) -> Path:
    """A diffusers-layout config folder for the tiny model (what l2d_obs/data/sd15 is for SD1.5)."""
    from transformers import CLIPTextConfig

    (root / "unet").mkdir(parents=True)
    (root / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel", **UNET_CONFIG}))
    (root / "text_encoder").mkdir()
    CLIPTextConfig(**CLIP_CONFIG).to_json_file(str(root / "text_encoder" / "config.json"))
    shutil.copytree(SD15_CONFIG_DIR / "tokenizer", root / "tokenizer")
    return root


# --- LDM single file ---------------------------------------------------------------------------------

def _ldm_resnet(prefix_d: str, prefix_l: str) -> dict[str, str]:
    pairs = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
             "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}  # fmt: skip
    return {f"{prefix_d}.{d}": f"{prefix_l}.{l}" for d, l in pairs.items()}


def diffusers_unet_to_ldm(state: dict[str, torch.Tensor], config: dict = UNET_CONFIG) -> dict[str, torch.Tensor]:
    """UNet2DConditionModel keys -> LDM 'model.diffusion_model.*' keys (SD1.x layout)."""
    lpb = config["layers_per_block"]
    n_blocks = len(config["block_out_channels"])
    prefix_map: dict[str, str] = {
        "time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
        "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
        "mid_block.attentions.0": "middle_block.1",
    }  # fmt: skip
    prefix_map.update(_ldm_resnet("mid_block.resnets.0", "middle_block.0"))
    prefix_map.update(_ldm_resnet("mid_block.resnets.1", "middle_block.2"))
    for i in range(n_blocks):
        for j in range(lpb):
            n = 1 + i * (lpb + 1) + j
            prefix_map.update(_ldm_resnet(f"down_blocks.{i}.resnets.{j}", f"input_blocks.{n}.0"))
            prefix_map[f"down_blocks.{i}.attentions.{j}"] = f"input_blocks.{n}.1"
        if i < n_blocks - 1:
            prefix_map[f"down_blocks.{i}.downsamplers.0.conv"] = f"input_blocks.{1 + i * (lpb + 1) + lpb}.0.op"
        has_attn = "CrossAttn" in config["up_block_types"][i]
        for j in range(lpb + 1):
            n = i * (lpb + 1) + j
            prefix_map.update(_ldm_resnet(f"up_blocks.{i}.resnets.{j}", f"output_blocks.{n}.0"))
            prefix_map[f"up_blocks.{i}.attentions.{j}"] = f"output_blocks.{n}.1"
        if i < n_blocks - 1:
            prefix_map[f"up_blocks.{i}.upsamplers.0.conv"] = f"output_blocks.{i * (lpb + 1) + lpb}.{2 if has_attn else 1}.conv"
    out = {}
    for key, tensor in state.items():
        best = max((p for p in prefix_map if key.startswith(p + ".")), key=len, default=None)
        assert best is not None, f"no LDM name for {key}"
        out["model.diffusion_model." + prefix_map[best] + key[len(best):]] = tensor.clone()
    return out


def write_ldm_single_file(path: Path, unet2d, text_encoder, extras: bool = True) -> Path:
    state = diffusers_unet_to_ldm(unet2d.state_dict())
    for key, tensor in text_encoder.state_dict().items():  # LDM files use the 'text_model.' names
        state["cond_stage_model.transformer.text_model." + key] = tensor.clone()
    if extras:  # parts of a real LDM file the loader must knowingly skip
        state["first_stage_model.encoder.conv_in.weight"] = torch.zeros(8, 3, 3, 3)
        state["alphas_cumprod"] = torch.linspace(1, 0, 1000)
        state["model_ema.decay"] = torch.tensor(0.999)
    _save(path, state)
    return path


def _save(path: Path, state: dict[str, torch.Tensor]) -> None:
    state = {k: v.contiguous() for k, v in state.items()}
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({"state_dict": state, "global_step": 1}, str(path))


# --- original AnimateDiff / Live2Diff motion modules ------------------------------------------------

def diffusers_motion_to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """UNetMotionModel motion-module keys -> original UNet3D names (one PE table per attention)."""
    out = {}
    for key, tensor in state.items():
        if ".motion_modules." not in key:
            continue
        head, rest = key.split(".motion_modules.", 1)
        idx, inner = rest.split(".", 1)
        prefix = f"{head}.motion_modules.{idx}.temporal_transformer."
        if not inner.startswith("transformer_blocks."):
            out[prefix + inner] = tensor.clone()
            continue
        _, t, sub = inner.split(".", 2)
        block = f"{prefix}transformer_blocks.{t}."
        if sub == "pos_embed.pe":
            for n in (0, 1):
                out[f"{block}attention_blocks.{n}.pos_encoder.pe"] = tensor.clone()
            continue
        for d_name, o_name in (("attn1.", "attention_blocks.0."), ("attn2.", "attention_blocks.1."),
                               ("norm1.", "norms.0."), ("norm2.", "norms.1."), ("norm3.", "ff_norm."), ("ff.", "ff.")):  # fmt: skip
            if sub.startswith(d_name):
                out[block + o_name + sub[len(d_name):]] = tensor.clone()
                break
        else:
            raise AssertionError(f"unmapped motion key {key}")
    return out


def tiny_depth_encoder(seed: int = 3) -> DepthEncoder:
    return randomise(DepthEncoder(in_channels=4, out_channels=UNET_CONFIG["block_out_channels"][0]), seed, 0.1)


def write_motion_file(path: Path, motion_unet, depth_encoder: DepthEncoder | None = None, module_prefix: bool = False) -> Path:
    state = diffusers_motion_to_original(motion_unet.state_dict())
    if depth_encoder is not None:
        state.update({f"flow_conv_in.{k}": v.clone() for k, v in depth_encoder.state_dict().items()})
    if module_prefix:  # DDP-trained checkpoints carry 'module.' (the official loader strips it too)
        state = {f"module.{k}": v for k, v in state.items()}
    _save(path, state)
    return path


# --- LoRA --------------------------------------------------------------------------------------------

LORA_TARGETS_UNET = (
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k",
    "up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0",
    "down_blocks.0.attentions.0.proj_in",  # a 1x1 conv in SD1.5's layout
)
# Module names in the model; files name CLIP layers with a 'text_model.' prefix (see the writers).
LORA_TARGETS_TEXT = ("encoder.layers.0.self_attn.q_proj", "encoder.layers.1.mlp.fc1")


def _file_name(target: str, name: str) -> str:
    return name if target == "unet" else f"text_model.{name}"


def lora_pairs(models: dict[str, torch.nn.Module], rank: int, seed: int) -> dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]]:
    gen = seeded(seed)
    pairs = {}
    for target, names in (("unet", LORA_TARGETS_UNET), ("text_encoder", LORA_TARGETS_TEXT)):
        modules = dict(models[target].named_modules())
        for name in names:
            w = modules[name].weight
            tail = w.shape[2:]
            down = torch.randn((rank, w.shape[1], *tail), generator=gen) * 0.3
            up = torch.randn((w.shape[0], rank, *([1] * len(tail))), generator=gen) * 0.3
            pairs[(target, name)] = (down, up)
    return pairs


def write_kohya_lora(path: Path, pairs, alpha: float) -> Path:
    state = {}
    for (target, name), (down, up) in pairs.items():
        key = ("lora_unet_" if target == "unet" else "lora_te_") + _file_name(target, name).replace(".", "_")
        state[f"{key}.lora_down.weight"] = down
        state[f"{key}.lora_up.weight"] = up
        state[f"{key}.alpha"] = torch.tensor(alpha)
    _save(path, state)
    return path


def write_peft_lora(path: Path, pairs) -> Path:
    state = {}
    for (target, name), (down, up) in pairs.items():
        state[f"{target}.{_file_name(target, name)}.lora_A.weight"] = down
        state[f"{target}.{_file_name(target, name)}.lora_B.weight"] = up
    _save(path, state)
    return path


def apply_lora_by_hand(models, pairs, scale: float, alpha: float | None) -> None:
    """The expected result of fusing, computed directly: W += scale * alpha/rank * up @ down."""
    with torch.no_grad():
        for (target, name), (down, up) in pairs.items():
            w = dict(models[target].named_modules())[name].weight
            rank = down.shape[0]
            factor = scale * ((alpha / rank) if alpha is not None else 1.0)
            w += factor * (up.flatten(1) @ down.flatten(1)).reshape(w.shape)
