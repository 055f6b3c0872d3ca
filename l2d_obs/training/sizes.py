"""Model sizes `l2d-obs train` can build from scratch, and the fresh parts of each.

One code path for every size: a diffusers ``UNet2DConditionModel`` (the image model, inflated to a
``UNetMotionModel`` when the motion stage starts), an ``AutoencoderTiny`` (TAESD's class), a CLIP text
encoder over a character-level tokenizer, a transformers DPT depth estimator and E_cond. ``tiny`` is for
the CI smoke test, ``small`` is the shipped CPU default. A full SD1.5-size run starts from real weights
instead (``[init]`` in the run config) and uses the same stages.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..engine.depth import DepthEncoder, TransformersDepthEstimator
from ..engine.tiny import build_char_tokenizer, build_tiny_text_encoder


@dataclass(frozen=True)
class ModelSize:
    name: str
    block_out_channels: tuple[int, ...]
    layers_per_block: int
    cross_attention_dim: int
    attention_head_dim: int
    norm_num_groups: int
    motion_heads: int
    motion_max_positions: int
    vae_channels: int
    vae_blocks: tuple[int, ...]  # encoder blocks per level; len - 1 = log2(downsampling)
    depth_channels: tuple[int, ...]
    dpt_hidden: int
    dpt_layers: int
    dpt_image_size: int
    text_layers: int
    # The autoencoder's latent channels (the UNet's in/out, E_cond's input). SD1.5 has 4 at 8x; at 4x
    # with 16-channel convs, 4 held luminance and one colour axis only (docs/model-card.md), 8 hold both.
    latent_channels: int = 4

    @property
    def vae_factor(self) -> int:
        return 2 ** (len(self.vae_blocks) - 1)


SIZES: dict[str, ModelSize] = {
    "tiny": ModelSize(
        name="tiny", block_out_channels=(16, 32), layers_per_block=1, cross_attention_dim=16, attention_head_dim=8,
        norm_num_groups=8, motion_heads=2, motion_max_positions=24, vae_channels=8, vae_blocks=(1, 1, 1),
        depth_channels=(8, 8, 16), dpt_hidden=16, dpt_layers=4, dpt_image_size=32, text_layers=1,
    ),
    "small": ModelSize(
        name="small", block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32, attention_head_dim=8,
        norm_num_groups=16, motion_heads=4, motion_max_positions=24, vae_channels=16, vae_blocks=(1, 1, 1),
        depth_channels=(16, 16, 32, 32), dpt_hidden=48, dpt_layers=4, dpt_image_size=64, text_layers=2,
        latent_channels=8,
    ),
}


def size_named(name: str) -> ModelSize:
    try:
        return SIZES[name]
    except KeyError:
        raise ValueError(f"unknown model size {name!r} (known: {', '.join(SIZES)})") from None


def new_unet2d(size: ModelSize):
    from diffusers import UNet2DConditionModel

    levels = len(size.block_out_channels)
    # Cross-attention (and its spatial self-attention) only below full latent resolution: it is the
    # expensive part at full resolution and a fixed prompt needs little of it.
    down = ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (levels - 1)
    up = ("CrossAttnUpBlock2D",) * (levels - 1) + ("UpBlock2D",)
    return UNet2DConditionModel(
        sample_size=32,
        in_channels=size.latent_channels,
        out_channels=size.latent_channels,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=size.block_out_channels,
        layers_per_block=size.layers_per_block,
        norm_num_groups=size.norm_num_groups,
        cross_attention_dim=size.cross_attention_dim,
        attention_head_dim=size.attention_head_dim,
    )


def new_vae(size: ModelSize):
    from diffusers import AutoencoderTiny

    c = size.vae_channels
    levels = len(size.vae_blocks)
    vae = AutoencoderTiny(
        encoder_block_out_channels=(c,) * levels,
        decoder_block_out_channels=(c,) * levels,
        num_encoder_blocks=size.vae_blocks,
        num_decoder_blocks=tuple(reversed(size.vae_blocks)),
        latent_channels=size.latent_channels,
    )
    _init_relu_residual(vae)
    return vae


def _init_relu_residual(model: torch.nn.Module) -> None:
    """He init for the ReLU convs and a zeroed last conv in every residual block (each block starts as
    its skip path): TAESD's plain conv stacks train several times faster from scratch this way."""
    from diffusers.models.unets.unet_2d_blocks import AutoencoderTinyBlock

    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
    for module in model.modules():
        if isinstance(module, AutoencoderTinyBlock):
            torch.nn.init.zeros_(module.conv[-1].weight)
            torch.nn.init.zeros_(module.conv[-1].bias)


def new_text_encoder(size: ModelSize, vocab_size: int):
    # The tiny model's CLIP builder reads the same two fields (cross_attention_dim, text_layers).
    return build_tiny_text_encoder(vocab_size, size)  # type: ignore[arg-type]


def new_depth_estimator(size: ModelSize) -> TransformersDepthEstimator:
    from transformers import DPTConfig, DPTForDepthEstimation

    h = size.dpt_hidden
    config = DPTConfig(
        hidden_size=h,
        num_hidden_layers=size.dpt_layers,
        num_attention_heads=4 if h % 4 == 0 else 2,
        intermediate_size=2 * h,
        image_size=size.dpt_image_size,
        patch_size=8,
        neck_hidden_sizes=[h // 2, h, h, h],
        fusion_hidden_size=h // 2 if h >= 32 else h,
        backbone_out_indices=list(range(size.dpt_layers - 4, size.dpt_layers)),  # the neck takes 4 levels
        head_in_index=-1,
    )
    model = DPTForDepthEstimation(config)
    return TransformersDepthEstimator(model, input_size=(size.dpt_image_size, size.dpt_image_size))


def new_depth_encoder(size: ModelSize) -> DepthEncoder:
    return DepthEncoder(size.latent_channels, size.block_out_channels[0], size.depth_channels)


@dataclass
class FreshParts:
    unet2d: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    depth_estimator: TransformersDepthEstimator
    depth_encoder: DepthEncoder


def build_fresh_parts(size: ModelSize, seed: int) -> FreshParts:
    """Every part with seeded initial weights: the same seed gives the same start on every machine."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tokenizer = build_char_tokenizer()
        return FreshParts(
            unet2d=new_unet2d(size),
            vae=new_vae(size),
            text_encoder=new_text_encoder(size, len(tokenizer)),
            tokenizer=tokenizer,
            depth_estimator=new_depth_estimator(size),
            depth_encoder=new_depth_encoder(size),
        )
