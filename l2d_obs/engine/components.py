"""The parts a Live2Diff engine is made of, as one typed bundle.

Loaders (real weights) and the tiny builder (random weights) both produce a Live2DiffComponents;
the engine patches the UNet for streaming when it takes the bundle, so loaders hand over plain
diffusers models with unchanged state-dict keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from diffusers import AutoencoderTiny, LCMScheduler, UNetMotionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from .depth import DepthEncoder, DepthEstimator


@dataclass
class Live2DiffComponents:
    unet: "UNetMotionModel"  # SD1.5-style UNet with motion modules loaded (plain diffusers layout)
    vae: "AutoencoderTiny"  # TAESD: encode takes [-1, 1], decode returns [-1, 1]
    text_encoder: "CLIPTextModel"
    tokenizer: "CLIPTokenizer"
    scheduler: "LCMScheduler"
    depth_encoder: "DepthEncoder | None" = None  # E_cond; None when the profile has depth off
    depth_estimator: "DepthEstimator | None" = None
    clip_skip: int = 1  # A1111 convention: 1 = last CLIP layer, 2 = penultimate (what SD1.5 styles expect)
