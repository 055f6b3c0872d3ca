"""Model builds the benchmark runs: tiny, small and full (real SD1.5 architecture), random weights.

Speed does not depend on trained weights, so every size is built from configs with seeded random
weights and the same diffusers/transformers classes real weights load into:

- tiny: the engine's own toy model (``l2d_obs.engine.tiny``);
- small: the same layout as SD1.5 (3 cross-attention down blocks + 1 plain, motion modules, no
  mid-block motion module) with narrow channels — minutes, not hours, on a laptop CPU;
- full: SD1.5's UNet + AnimateDiff-v1/Live2Diff motion modules (PE length 24, 8 motion heads, no
  mid-block motion module), E_cond at its official widths, TAESD, a CLIP ViT-L/14 text encoder and
  MiDaS DPT-hybrid. The tokenizer stays the tiny character tokenizer (no vocab files offline): it
  produces the same 77-token input shape, so the text encoder's cost is unchanged.

``no_temporal_unet`` makes the per-frame baseline: a ``UNet2DConditionModel`` with the same config
holding the motion UNet's non-motion weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from ..engine.components import Live2DiffComponents
from ..engine.depth import DepthEncoder, TransformersDepthEstimator
from ..engine.tiny import (
    TinySizes,
    build_char_tokenizer,
    build_tiny_components,
    make_motion_modules_matter,
    randomise_depth_encoder_output,
    sd15_scheduler,
)

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class UNetShape:
    block_out_channels: tuple[int, ...]
    layers_per_block: int
    heads: int  # spatial attention heads (SD1.5: 8)
    cross_attention_dim: int
    norm_num_groups: int
    motion_heads: int
    motion_max_positions: int


@dataclass(frozen=True)
class TextShape:
    hidden_size: int
    intermediate_size: int
    layers: int
    heads: int


# SD1.5 / Live2Diff facts (DESIGN §5): 4 levels, 2 layers each, 8 heads, 768-wide text, motion PE 24.
FULL_UNET = UNetShape((320, 640, 1280, 1280), 2, 8, 768, 32, 8, 24)
FULL_TEXT = TextShape(768, 3072, 12, 12)  # CLIP ViT-L/14 text tower
SMALL_UNET = UNetShape((64, 128, 192, 192), 1, 4, 128, 32, 4, 24)
SMALL_TEXT = TextShape(128, 512, 2, 4)
SD15_DOWN = ("CrossAttnDownBlockMotion", "CrossAttnDownBlockMotion", "CrossAttnDownBlockMotion", "DownBlockMotion")
SD15_UP = ("UpBlockMotion", "CrossAttnUpBlockMotion", "CrossAttnUpBlockMotion", "CrossAttnUpBlockMotion")


def build_motion_unet(shape: UNetShape):
    from diffusers import UNetMotionModel

    return UNetMotionModel(
        in_channels=4,
        out_channels=4,
        down_block_types=SD15_DOWN,
        up_block_types=SD15_UP,
        block_out_channels=shape.block_out_channels,
        layers_per_block=shape.layers_per_block,
        norm_num_groups=shape.norm_num_groups,
        cross_attention_dim=shape.cross_attention_dim,
        num_attention_heads=shape.heads,
        motion_num_attention_heads=shape.motion_heads,
        motion_max_seq_length=shape.motion_max_positions,
        use_motion_mid_block=False,  # Live2Diff: no motion module in the mid block
    )


def build_text_encoder(shape: TextShape, vocab_size: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
    )
    return CLIPTextModel(config)


def build_taesd():
    """TAESD's architecture is AutoencoderTiny's default config."""
    from diffusers import AutoencoderTiny

    return AutoencoderTiny()


def build_dpt_hybrid() -> TransformersDepthEstimator:
    """MiDaS DPT-hybrid: ViT-hybrid (BiT backbone) DPT at 384x384 (config facts: DESIGN §4)."""
    from transformers import DPTConfig, DPTForDepthEstimation

    config = DPTConfig(
        is_hybrid=True,
        neck_hidden_sizes=[256, 512, 768, 768],
        reassemble_factors=[1, 1, 1, 0.5],
        backbone_featmap_shape=[1, 1024, 24, 24],
        image_size=384,
    )
    model = DPTForDepthEstimation(config)
    return TransformersDepthEstimator(model, input_size=(384, 384))


def build_small_dpt() -> TransformersDepthEstimator:
    from transformers import DPTConfig, DPTForDepthEstimation

    config = DPTConfig(
        hidden_size=96,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=192,
        image_size=64,
        patch_size=8,
        neck_hidden_sizes=[24, 48, 96, 96],
        fusion_hidden_size=48,
        backbone_out_indices=[0, 1, 2, 3],
        head_in_index=-1,
        initializer_range=0.1,
    )
    model = DPTForDepthEstimation(config)
    return TransformersDepthEstimator(model, input_size=(64, 64))


def build_components(size: str, depth: bool = True, weights_seed: int = 0) -> Live2DiffComponents:
    """Components of one benchmark size; the same seed gives the same weights."""
    if size == "tiny":
        return build_tiny_components(weights_seed, depth=depth, sizes=TinySizes())
    if size not in ("small", "full"):
        raise ValueError(f"unknown size {size!r}; use tiny, small or full")
    unet_shape, text_shape = (FULL_UNET, FULL_TEXT) if size == "full" else (SMALL_UNET, SMALL_TEXT)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(weights_seed)
        unet = build_motion_unet(unet_shape)
        tokenizer = build_char_tokenizer()
        # Full: CLIP's real vocabulary size (49408) so the embedding table has its real size.
        vocab = 49408 if size == "full" else len(tokenizer)
        text_encoder = build_text_encoder(text_shape, vocab)
        vae = build_taesd()
        generator = torch.Generator().manual_seed(weights_seed + 1)
        if size == "small":
            make_motion_modules_matter(unet, generator)
        depth_encoder = depth_estimator = None
        if depth:
            depth_encoder = DepthEncoder(4, unet_shape.block_out_channels[0])
            randomise_depth_encoder_output(depth_encoder, generator)
            depth_estimator = build_dpt_hybrid() if size == "full" else build_small_dpt()
    log.info("built %s components (UNet %.0fM params)", size, sum(p.numel() for p in unet.parameters()) / 1e6)
    return Live2DiffComponents(
        unet=unet.eval(),
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        scheduler=sd15_scheduler(),
        depth_encoder=None if depth_encoder is None else depth_encoder.eval(),
        depth_estimator=depth_estimator,
        # SD1.5 styles use the penultimate CLIP layer; the prompt is encoded once, outside every timing.
        clip_skip=2 if size == "full" else 1,
    )


_TO_2D = {
    "CrossAttnDownBlockMotion": "CrossAttnDownBlock2D",
    "DownBlockMotion": "DownBlock2D",
    "CrossAttnUpBlockMotion": "CrossAttnUpBlock2D",
    "UpBlockMotion": "UpBlock2D",
}


def no_temporal_unet(motion_unet) -> torch.nn.Module:
    """A UNet2DConditionModel with the motion UNet's config and every non-motion weight.

    Loaded strictly: a key the 2D UNet expects but the motion UNet lacks (or the reverse, outside
    the motion modules) is an error, so the baseline is exactly the motion UNet minus its motion.
    """
    from diffusers import UNet2DConditionModel

    cfg = motion_unet.config
    heads = cfg.num_attention_heads
    # Built on the meta device and handed the motion UNet's own tensors (assign=True): no second
    # random init (a minute at full size) and no second copy of the weights in memory.
    with torch.device("meta"):
        unet2d = UNet2DConditionModel(
            in_channels=cfg.in_channels,
            out_channels=cfg.out_channels,
            down_block_types=tuple(_TO_2D[b] for b in cfg.down_block_types),
            up_block_types=tuple(_TO_2D[b] for b in cfg.up_block_types),
            block_out_channels=tuple(cfg.block_out_channels),
            layers_per_block=cfg.layers_per_block,
            norm_num_groups=cfg.norm_num_groups,
            norm_eps=cfg.norm_eps,
            cross_attention_dim=cfg.cross_attention_dim,
            # diffusers' UNet2DConditionModel calls the head count attention_head_dim (a known misnomer).
            attention_head_dim=heads,
            mid_block_scale_factor=cfg.mid_block_scale_factor,
            downsample_padding=cfg.downsample_padding,
            act_fn=cfg.act_fn,
            use_linear_projection=cfg.use_linear_projection,
            time_cond_proj_dim=cfg.time_cond_proj_dim,
        )
    state = {k: v for k, v in motion_unet.state_dict().items() if "motion_modules" not in k}
    unet2d.load_state_dict(state, strict=True, assign=True)
    left = [name for name, t in [*unet2d.named_parameters(), *unet2d.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"no-temporal UNet: tensors not taken from the motion UNet: {left[:5]}")
    return unet2d.eval().requires_grad_(False)
