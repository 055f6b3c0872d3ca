"""The models a training run holds, from fresh weights or from a previous run, and their transitions:
inflating the image UNet to a motion UNet (paper Sec. 3.2) and adding a LoRA (a user's own style)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import torch
from torch import nn

from ..engine.depth import DepthEncoder, TransformersDepthEstimator
from ..engine.temporal import TemporalContext, motion_transformers, patch_motion_modules
from .extras import require
from .sizes import ModelSize, build_fresh_parts

log = logging.getLogger(__name__)

# LoRA goes on the image layers only: the motion modules, VAE and depth parts stay shared between styles.
LORA_TARGETS = r"^(?!.*motion_modules).*\.(to_q|to_k|to_v|to_out\.0|conv1|conv2|proj_in|proj_out|ff\.net\.0\.proj|ff\.net\.2)$"


@dataclass
class TrainingModels:
    unet: nn.Module  # UNet2DConditionModel, then (inflated) a patched UNetMotionModel
    vae: nn.Module
    text_encoder: nn.Module
    tokenizer: object
    depth_estimator: TransformersDepthEstimator
    depth_encoder: DepthEncoder
    motion_heads: int
    motion_max_positions: int
    unet2d_config: dict
    inflated: bool = False
    has_lora: bool = False
    context: TemporalContext | None = None
    latent_scale: float | None = None  # the VAE's scaling_factor, calibrated after the vae stage
    init_files: dict = field(default_factory=dict)  # run.init's weight files (a LoRA run's profile reuses them)
    _cond: list = field(default_factory=lambda: [None])
    _hook: object = None

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def fresh(cls, size: ModelSize, seed: int) -> "TrainingModels":
        parts = build_fresh_parts(size, seed)
        models = cls(
            unet=parts.unet2d,
            vae=parts.vae,
            text_encoder=parts.text_encoder,
            tokenizer=parts.tokenizer,
            depth_estimator=parts.depth_estimator,
            depth_encoder=parts.depth_encoder,
            motion_heads=size.motion_heads,
            motion_max_positions=size.motion_max_positions,
            unet2d_config=dict(parts.unet2d.config),
        )
        models._install_hook()
        return models

    @classmethod
    def from_components(cls, components, motion_heads: int, unet2d_config: dict) -> "TrainingModels":
        """Start from a model the project's loaders built (a previous run's export, or real weights)."""
        unet = components.unet
        models = cls(
            unet=unet,
            vae=components.vae,
            text_encoder=components.text_encoder,
            tokenizer=components.tokenizer,
            depth_estimator=components.depth_estimator,
            depth_encoder=components.depth_encoder,
            motion_heads=motion_heads,
            motion_max_positions=int(motion_transformers(unet)[0].transformer_blocks[0].pos_embed.pe.shape[1]),
            unet2d_config=dict(unet2d_config),
            inflated=True,
            latent_scale=float(getattr(components.vae.config, "scaling_factor", 1.0)),
        )
        models._install_hook()
        return models

    def _install_hook(self) -> None:
        if self._hook is not None:
            self._hook.remove()
        # E_cond's output is added to conv_in's, exactly where the engine adds it.
        self._hook = self.unet.conv_in.register_forward_hook(
            lambda module, inputs, output: output if self._cond[0] is None else output + self._cond[0]
        )

    def inflate(self, window: int, warmup: int, steps: int, seed: int = 0) -> None:
        """Image UNet -> motion UNet with zero-output motion modules; then the streaming patch (its CLIP
        mode is the training mask)."""
        from ..weights.motion import new_motion_unet

        if not self.inflated:
            with torch.random.fork_rng(devices=[]):  # seeded: the motion modules' initial weights are reproducible
                torch.manual_seed(seed)
                self.unet = new_motion_unet(self.unet, self.motion_heads, self.motion_max_positions)
            self.inflated = True
            self._install_hook()
        self.context = patch_motion_modules(self.unet, window, warmup, steps)

    def add_lora(self, rank: int, seed: int) -> None:
        peft = require("peft")
        LoraConfig, inject_adapter_in_model = peft.LoraConfig, peft.inject_adapter_in_model

        if self.has_lora:
            return
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            config = LoraConfig(r=rank, lora_alpha=rank, target_modules=LORA_TARGETS, init_lora_weights=True)
            self.unet = inject_adapter_in_model(config, self.unet)
        self.has_lora = True
        self._install_hook()

    # -- state ------------------------------------------------------------------------------------

    def parts(self) -> dict[str, nn.Module]:
        return {
            "unet": self.unet,
            "vae": self.vae,
            "text_encoder": self.text_encoder,
            "depth_estimator": self.depth_estimator.model,
            "depth_encoder": self.depth_encoder,
        }

    def state(self) -> dict[str, dict[str, torch.Tensor]]:
        return {name: {k: v.detach().clone() for k, v in m.state_dict().items()} for name, m in self.parts().items()}

    def load_state(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        for name, module in self.parts().items():
            module.load_state_dict(state[name], strict=True)

    def freeze_all(self) -> None:
        for module in self.parts().values():
            module.requires_grad_(False)
            module.eval()

    def lora_state(self) -> dict[str, torch.Tensor]:
        """LoRA pairs in peft's key style with the ``unet.`` prefix (what ``weights/lora.py`` reads)."""
        out = {}
        for key, value in self.unet.state_dict().items():
            m = re.fullmatch(r"(.+)\.(lora_[AB])\.default\.weight", key)
            if m:
                out[f"unet.{m[1]}.{m[2]}.weight"] = value.detach().clone().contiguous()
        return out

    def base_state(self) -> dict[str, torch.Tensor]:
        """The UNet's own weights (without LoRA wrappers), in UNetMotionModel key names."""
        out = {}
        for key, value in self.unet.state_dict().items():
            if ".lora_" in key:
                continue
            out[key.replace(".base_layer.", ".")] = value.detach().clone().contiguous()
        return out

    def set_latent_scale(self, scale: float) -> None:
        """Store it where the engine reads it (``vae.config.scaling_factor``) and where training does."""
        self.latent_scale = float(scale)
        self.vae.register_to_config(scaling_factor=self.latent_scale)

    def encode(self, images01: torch.Tensor) -> torch.Tensor:
        """Scaled latents, exactly as the engine makes them (``StreamEngine._encode``)."""
        return self.vae.encode(images01 * 2 - 1).latents * (self.latent_scale or 1.0)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """[-1, 1] pixels from scaled latents (``StreamEngine._decode`` before clamping)."""
        return self.vae.decode(latents / (self.latent_scale or 1.0)).sample

    def condition(self, cond: torch.Tensor | None) -> None:
        self._cond[0] = cond

    def trainable(self, module_filter) -> list[nn.Parameter]:
        params = []
        for name, module in self.parts().items():
            for pname, p in module.named_parameters():
                if module_filter(name, pname):
                    p.requires_grad_(True)
                    params.append(p)
        return params
