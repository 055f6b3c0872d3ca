"""Depth prior (Live2Diff Sec. 3.4): a depth estimator and E_cond, the depth-latent encoder.

Per frame: depth map -> normalised to [0, 1] *per frame* (the same rule for warmup and streaming
frames, unlike the official code) -> 3 channels in [-1, 1] -> VAE encode -> E_cond -> added to the
output of the UNet's conv_in.
"""

from __future__ import annotations

import logging
from typing import Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .depth_fold import fold_weight_standardization

log = logging.getLogger(__name__)

# E_cond's channel ladder in the official code: 4 -> 16 -> 16 -> 32 -> 32 -> 96 -> 96 -> 256 -> 320.
DEFAULT_DEPTH_ENCODER_CHANNELS: tuple[int, ...] = (16, 16, 32, 32, 96, 96, 256)


class DepthEncoder(nn.Module):
    """E_cond: 3x3 convs, stride 1, SiLU between, the last conv zero-initialised.

    Zero init makes a fresh E_cond an exact no-op on the UNet, so depth can be switched on for any
    UNet without changing its output until trained weights are loaded.
    """

    def __init__(
        self,
        in_channels: int = 4,
        out_channels: int = 320,
        channels: Sequence[int] = DEFAULT_DEPTH_ENCODER_CHANNELS,
    ) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, channels[0], kernel_size=3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Conv2d(c_in, c_out, kernel_size=3, padding=1) for c_in, c_out in zip(channels[:-1], channels[1:])
        )
        self.conv_out = nn.Conv2d(channels[-1], out_channels, kernel_size=3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @staticmethod
    def channels_of(state: dict[str, torch.Tensor]) -> tuple[int, ...] | None:
        """The channel ladder a state dict was saved with (the official one, or a smaller trained one);
        None when the keys do not describe a DepthEncoder."""
        try:
            ladder = [int(state["conv_in.weight"].shape[0])]
            i = 0
            while f"blocks.{i}.weight" in state:
                ladder.append(int(state[f"blocks.{i}.weight"].shape[0]))
                i += 1
        except (KeyError, AttributeError, IndexError):
            return None
        return tuple(ladder)

    def forward(self, depth_latent: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.conv_in(depth_latent))
        for block in self.blocks:
            x = F.silu(block(x))
        return self.conv_out(x)


class DepthEstimator(Protocol):
    """Monocular depth: (N, 3, H, W) RGB in [0, 1] -> (N, 1, H, W) relative depth (any scale)."""

    def estimate(self, images: torch.Tensor) -> torch.Tensor: ...

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "DepthEstimator": ...


class TransformersDepthEstimator:
    """Any transformers depth model (DPT / MiDaS DPT-hybrid, Depth-Anything) behind DepthEstimator.

    Preprocessing is done in torch (no torchvision): resize to the model's input size, normalise
    with the model's mean/std; the predicted depth is resized back to the frame size.
    """

    def __init__(
        self,
        model: nn.Module,
        input_size: tuple[int, int],
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
    ) -> None:
        self.model = model.eval()
        self.input_size = input_size  # (height, width) the model expects
        self._mean = torch.tensor(mean).view(1, 3, 1, 1)
        self._std = torch.tensor(std).view(1, 3, 1, 1)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None, *,
           fold: bool = True) -> "TransformersDepthEstimator":
        """Place the model for inference; BiT's weight standardisation (DPT-hybrid) is folded here,
        on the device and before the cast, so frames run plain convs with fp32-standardised weights.
        ``fold=False`` keeps the per-frame standardisation (a benchmark's baseline)."""
        self.model.to(device=device)
        if fold and (folded := fold_weight_standardization(self.model)):
            log.info("depth estimator: weight standardisation of %d BiT conv(s) folded", folded)
        if dtype is not None:
            self.model.to(dtype=dtype)
        self._mean = self._mean.to(device=device, dtype=dtype or self._mean.dtype)
        self._std = self._std.to(device=device, dtype=dtype or self._std.dtype)
        return self

    @torch.no_grad()
    def estimate(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_depth(images)

    def forward_depth(self, images: torch.Tensor) -> torch.Tensor:
        """``estimate`` with autograd (training the estimator)."""
        n, _, h, w = images.shape
        param = next(self.model.parameters())
        x = images.to(device=param.device, dtype=param.dtype)
        x = F.interpolate(x, size=self.input_size, mode="bicubic", align_corners=False).clamp(0, 1)
        x = (x - self._mean) / self._std
        predicted = self.model(pixel_values=x).predicted_depth  # (N, h', w')
        return F.interpolate(predicted.unsqueeze(1).float(), size=(h, w), mode="bicubic", align_corners=False)


def normalise_depth(depth: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Each frame's depth to [0, 1] by its own min and max (one rule for warmup and streaming)."""
    flat = depth.flatten(1)
    lo = flat.min(dim=1).values.view(-1, 1, 1, 1)
    hi = flat.max(dim=1).values.view(-1, 1, 1, 1)
    return (depth - lo) / (hi - lo).clamp_min(eps)


def depth_to_vae_input(depth: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) depth in any scale -> (N, 3, H, W) in [-1, 1], the VAE's input range."""
    return normalise_depth(depth.float()).mul(2).sub(1).repeat(1, 3, 1, 1)


def build_tiny_dpt(seed: int, image_size: int = 32) -> TransformersDepthEstimator:
    """A small DPT with seeded random weights: the real transformers code path at toy size."""
    from transformers import DPTConfig, DPTForDepthEstimation

    config = DPTConfig(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=image_size,
        patch_size=8,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        backbone_out_indices=[0, 1, 2, 3],
        head_in_index=-1,
        # The default 0.02 init makes a toy DPT's output ~1e-9 everywhere; 0.1 gives a real map.
        initializer_range=0.1,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DPTForDepthEstimation(config)
    return TransformersDepthEstimator(model, input_size=(image_size, image_size))
