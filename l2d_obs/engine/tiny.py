"""The `tiny` model: every Live2Diff part at toy size with seeded random weights.

Built from configs with the same diffusers/transformers classes a real model uses, so demos, tests
and CI exercise the real code paths offline on any CPU. The random weights are scaled so that every
part matters (temporal attention, E_cond), which keeps equivalence tests from passing vacuously.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .components import Live2DiffComponents
from .depth import DepthEncoder, build_tiny_dpt
from .temporal import motion_transformers


@dataclass(frozen=True)
class TinySizes:
    block_out_channels: tuple[int, ...] = (32, 64)
    cross_attention_dim: int = 32
    text_layers: int = 2
    motion_heads: int = 2
    motion_max_positions: int = 32
    depth_channels: tuple[int, ...] = (8, 8, 16, 16)
    vae_channels: int = 16


def build_tiny_unet(sizes: TinySizes = TinySizes()):
    from diffusers import UNetMotionModel

    return UNetMotionModel(
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlockMotion", "DownBlockMotion"),
        up_block_types=("UpBlockMotion", "CrossAttnUpBlockMotion"),
        block_out_channels=sizes.block_out_channels,
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=sizes.cross_attention_dim,
        num_attention_heads=2,
        motion_num_attention_heads=sizes.motion_heads,
        motion_max_seq_length=sizes.motion_max_positions,
        use_motion_mid_block=False,  # Live2Diff has no motion module in the mid block
    )


def build_tiny_vae(sizes: TinySizes = TinySizes()):
    from diffusers import AutoencoderTiny

    c = sizes.vae_channels
    return AutoencoderTiny(
        encoder_block_out_channels=(c, c, c, c),
        decoder_block_out_channels=(c, c, c, c),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
        latent_channels=4,
    )


def _byte_level_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for the bytes 0..255."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    extra = 0
    alphabet = {}
    for byte in range(256):
        if byte in printable:
            alphabet[byte] = chr(byte)
        else:
            alphabet[byte] = chr(256 + extra)
            extra += 1
    return [alphabet[b] for b in range(256)]


def build_char_tokenizer():
    """A real CLIPTokenizer over a character-level byte BPE vocabulary (no merges): tiny and offline."""
    from transformers import CLIPTokenizer

    chars = _byte_level_alphabet()
    vocab_list = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(vocab_list)}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def build_tiny_text_encoder(vocab_size: int, sizes: TinySizes = TinySizes()):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=sizes.cross_attention_dim,
        intermediate_size=2 * sizes.cross_attention_dim,
        num_hidden_layers=sizes.text_layers,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
    )
    return CLIPTextModel(config)


def sd15_scheduler():
    """LCM scheduler with SD1.5's noise schedule (the values in SD1.5's scheduler config)."""
    from diffusers import LCMScheduler

    return LCMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        set_alpha_to_one=True,
        steps_offset=1,
        timestep_spacing="leading",
        clip_sample=False,
    )


def make_motion_modules_matter(unet: nn.Module, generator: torch.Generator, std: float = 0.15) -> None:
    """Re-draw the motion modules' linear weights so temporal attention visibly changes the output.

    diffusers initialises motion modules so that their contribution is tiny; an equivalence test
    on such weights would pass even if the temporal attention were wrong.
    """
    for transformer in motion_transformers(unet):
        for module in transformer.modules():
            if isinstance(module, nn.Linear):
                with torch.no_grad():
                    module.weight.normal_(0.0, std, generator=generator)
                    if module.bias is not None:
                        module.bias.normal_(0.0, std, generator=generator)


def randomise_depth_encoder_output(encoder: DepthEncoder, generator: torch.Generator, std: float = 0.05) -> None:
    """Give E_cond's zero-initialised last conv random weights, as training would."""
    with torch.no_grad():
        encoder.conv_out.weight.normal_(0.0, std, generator=generator)
        encoder.conv_out.bias.normal_(0.0, std, generator=generator)


def normalise_vae_latents(vae, generator: torch.Generator) -> None:
    """Scale the random encoder's last conv so latents have about unit spread, as SD latents do.

    Random weights give latents ~0.06 wide, which the SDEdit noise would drown: the input picture
    would barely matter and every test of content flow would be weak.
    """
    last_conv = [m for m in vae.encoder.modules() if isinstance(m, nn.Conv2d)][-1]
    with torch.no_grad():
        probe = torch.rand(4, 3, 64, 64, generator=generator) * 2 - 1
        spread = float(vae.encode(probe).latents.std())
        last_conv.weight.mul_(1.0 / spread)
        if last_conv.bias is not None:
            last_conv.bias.mul_(1.0 / spread)


def normalise_vae_output(vae, generator: torch.Generator, spread: float = 0.25) -> None:
    """Shift and scale the random decoder's last conv so decoded pictures are mid-grey on average with
    visible contrast, instead of a near-black frame: the tiny demo should look like video.

    TAESD's decoder layers produce [0, 1] pixels (mapped to [-1, 1] afterwards), so the target is
    mean 0.5 with the given spread at the last conv's output.
    """
    last_conv = [m for m in vae.decoder.modules() if isinstance(m, nn.Conv2d)][-1]
    captured: list[torch.Tensor] = []
    hook = last_conv.register_forward_hook(lambda module, inputs, output: captured.append(output))
    try:
        with torch.no_grad():
            vae.decode(torch.randn(4, 4, 8, 8, generator=generator))
    finally:
        hook.remove()
    raw = captured[-1]
    gain = spread / float(raw.std())
    with torch.no_grad():
        last_conv.weight.mul_(gain)
        if last_conv.bias is not None:
            last_conv.bias.sub_(float(raw.mean())).mul_(gain).add_(0.5)


def build_tiny_components(weights_seed: int = 0, depth: bool = True, sizes: TinySizes = TinySizes()) -> Live2DiffComponents:
    """All parts at toy size; the same seed gives bit-identical weights on every machine."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(weights_seed)
        unet = build_tiny_unet(sizes)
        vae = build_tiny_vae(sizes)
        tokenizer = build_char_tokenizer()
        text_encoder = build_tiny_text_encoder(len(tokenizer), sizes)
        generator = torch.Generator().manual_seed(weights_seed + 1)
        make_motion_modules_matter(unet, generator)
        normalise_vae_latents(vae, generator)
        normalise_vae_output(vae, generator)
        depth_encoder = None
        depth_estimator = None
        if depth:
            depth_encoder = DepthEncoder(4, sizes.block_out_channels[0], sizes.depth_channels)
            randomise_depth_encoder_output(depth_encoder, generator)
            depth_estimator = build_tiny_dpt(weights_seed + 2)
    return Live2DiffComponents(
        unet=unet.eval(),
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        scheduler=sd15_scheduler(),
        depth_encoder=None if depth_encoder is None else depth_encoder.eval(),
        depth_estimator=depth_estimator,
        clip_skip=1,
    )
