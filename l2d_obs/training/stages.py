"""What each training stage trains and how its loss is computed (paper Sec. 3.2 and 3.5).

    vae              the autoencoder (TAESD's architecture) on input frames and every style's targets
                     (l1/mse/chroma weigh its reconstruction loss); with ``anchor`` on top of
                     run.init, held to the init's latent space
    depth_estimator  the DPT depth estimator on procedural scenes whose depth is known
    image            the image UNet: one frame -> its stylisation through the engine's LCM steps
    motion           stage 1: motion modules only, on clips under the warmup attention mask,
                     image layers frozen
    depth            stage 2a: E_cond only (depth -> VAE -> E_cond, added after conv_in)
    joint            stage 2b: UNet (image + motion layers) and E_cond together
    lora             a LoRA on the image layers for another style, everything else shared and frozen

Every stage's batch is a pure function of (seed, stage, step), so a resumed run sees the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from ..engine.depth import depth_to_vae_input
from ..engine.stream import encode_prompt
from .config import StageConfig, TrainConfig
from .models import TrainingModels
from .objective import (
    FullSchedule,
    latent_regulariser,
    opponent_chroma,
    sample_indices,
    scale_shift_invariant_mse,
    unrolled_denoise_loss,
)


@dataclass
class StageBatch:
    frames: torch.Tensor  # (B, F, 3, H, W) in [0, 1], full frames
    targets: dict[str, torch.Tensor]  # style -> (B, F, 3, H, W)
    depth: torch.Tensor | None  # (B, F, 1, H, W) ground truth (1 = near) when every clip has it
    crop: tuple[int, int]  # (y, x) of the training crop, shared by the batch


def _mix(*values: int) -> int:
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h * 0xBF58476D1CE4E5B9 + v + 1) % (2**63 - 1)
    return h


def step_generators(seed: int, stage_index: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    key = _mix(seed, stage_index, step)
    return np.random.default_rng(key), torch.Generator().manual_seed(key)


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)


def clip_length_for(stage: StageConfig, config: TrainConfig) -> int:
    return config.clip_length if stage.name in ("motion", "depth", "joint", "lora") else 1


def kinds_for(stage: StageConfig, config: TrainConfig) -> tuple[str, ...]:
    return ("scene",) if stage.name == "depth_estimator" else config.kinds


def make_batch(config: TrainConfig, stage: StageConfig, stage_index: int, step: int, styles: tuple[str, ...]) -> StageBatch:
    from .data import ClipDataset
    from .stylize import stylize

    length = clip_length_for(stage, config)
    dataset = ClipDataset(
        size=(config.frame_size, config.frame_size), length=length, seed=_mix(config.seed, stage_index) % 2**32,
        split="train", kinds=kinds_for(stage, config),
    )  # fmt: skip
    rng, _ = step_generators(config.seed, stage_index, step)
    clips = [dataset.clip(step * stage.batch + b) for b in range(stage.batch)]
    frames = torch.stack([_to_tensor(c.frames) for c in clips])
    targets = {
        style: torch.stack([_to_tensor(np.stack([stylize(style, f) for f in c.frames])) for c in clips]) for style in styles
    }
    depth = None
    if all(c.depth is not None for c in clips):
        depth = torch.stack([torch.from_numpy(np.ascontiguousarray(c.depth)).float().unsqueeze(1) for c in clips])
    span = config.frame_size - config.crop
    crop = (int(rng.integers(0, span + 1)), int(rng.integers(0, span + 1)))
    if config.sensor_noise > 0 and stage.name not in ("vae", "depth_estimator"):
        frames = _with_sensor_noise(frames, config.sensor_noise, rng)
    return StageBatch(frames=frames, targets=targets, depth=depth, crop=crop)


def _with_sensor_noise(frames: torch.Tensor, max_std: float, rng: np.random.Generator) -> torch.Tensor:
    """A camera's noise on the inputs: new in every frame, its strength drawn per clip (0..max_std
    8-bit levels), quantised back to 8 bits. The targets are made from the clean frames, so the model
    learns to draw through the noise - which, frame by frame, it can only guess at and, over the
    frames its temporal attention sees, it can average out."""
    b = frames.shape[0]
    std = torch.from_numpy(rng.uniform(0.0, max_std, size=(b, 1, 1, 1, 1))).float() / 255.0
    noise = torch.from_numpy(rng.standard_normal(frames.shape, dtype=np.float32))
    return ((frames + std * noise).clamp(0, 1) * 255).round() / 255


def calibration_images(config: TrainConfig, count: int = 64) -> torch.Tensor:
    """A fixed set of training frames (all kinds) for calibrating the latent scale."""
    from .data import ClipDataset

    dataset = ClipDataset(size=(config.frame_size, config.frame_size), length=1, seed=_mix(config.seed, 999_999) % 2**32,
                          split="train", kinds=config.kinds)  # fmt: skip
    return torch.stack([_to_tensor(dataset.clip(i).frames)[0] for i in range(count)])


def _crop(x: torch.Tensor, crop: tuple[int, int], size: int) -> torch.Tensor:
    y, x0 = crop
    return x[..., y : y + size, x0 : x0 + size]


class StageRunner:
    """Loss computation for one stage; ``trainable`` says which parameters it optimises."""

    def __init__(self, models: TrainingModels, config: TrainConfig, stage: StageConfig, schedule: FullSchedule,
                 anchor_vae: torch.nn.Module | None = None) -> None:  # fmt: skip
        self.models = models
        self.anchor_vae = anchor_vae  # the init model's autoencoder, frozen (an anchored "vae" stage)
        self.config = config
        self.stage = stage
        self.schedule = schedule
        text = SimpleNamespace(tokenizer=models.tokenizer, text_encoder=models.text_encoder, clip_skip=1)
        self.prompt_embeds = encode_prompt(text, config.prompt, torch.device("cpu"))

    def trainable(self) -> list[torch.nn.Parameter]:
        m, name = self.models, self.stage.name
        m.freeze_all()
        if name == "vae":
            m.vae.train()
            return m.trainable(lambda part, p: part == "vae")
        if name == "depth_estimator":
            m.depth_estimator.model.train()
            return m.trainable(lambda part, p: part == "depth_estimator")
        if name == "image":  # image layers only (an init'd model already has motion modules)
            return m.trainable(lambda part, p: part == "unet" and ".motion_modules." not in p)
        if name == "motion":
            return m.trainable(lambda part, p: part == "unet" and ".motion_modules." in p)
        if name == "depth":
            return m.trainable(lambda part, p: part == "depth_encoder")
        if name == "joint":
            return m.trainable(lambda part, p: part in ("unet", "depth_encoder"))
        if name == "lora":
            return m.trainable(lambda part, p: part == "unet" and ".lora_" in p)
        raise ValueError(name)

    def loss(self, batch: StageBatch, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        name = self.stage.name
        if name == "vae":
            return self._vae_loss(batch)
        if name == "depth_estimator":
            return self._depth_estimator_loss(batch)
        return self._denoise_loss(batch, generator)

    # -- stages --------------------------------------------------------------------------------

    def _vae_loss(self, batch: StageBatch):
        vae, stage = self.models.vae, self.stage
        images = torch.cat([batch.frames.flatten(0, 1)] + [t.flatten(0, 1) for t in batch.targets.values()])
        images = _crop(images, batch.crop, self.config.crop) * 2 - 1
        latents = vae.encode(images).latents
        recon = vae.decode(latents).sample
        terms = {"l1": F.l1_loss(recon, images), "mse": F.mse_loss(recon, images),
                 "chroma": F.mse_loss(opponent_chroma(recon), opponent_chroma(images))}  # fmt: skip
        loss = stage.l1 * terms["l1"] + stage.mse * terms["mse"] + stage.chroma * terms["chroma"]
        if stage.anchor > 0:
            # Retraining a trained autoencoder: the UNet reads and writes its latents, so they stay where
            # they were (the scale too, so no regulariser), while the reconstruction gets better.
            assert self.anchor_vae is not None
            with torch.no_grad():
                reference = self.anchor_vae.encode(images).latents
            terms["latent_drift"] = F.mse_loss(latents, reference)
            loss = loss + stage.anchor * terms["latent_drift"]
        else:
            terms["latent_reg"] = latent_regulariser(latents)
            loss = loss + 0.1 * terms["latent_reg"]
        return loss, {k: float(v.detach()) for k, v in terms.items()}

    def _depth_estimator_loss(self, batch: StageBatch):
        if batch.depth is None:
            raise RuntimeError("depth_estimator stage got clips without depth")
        frames = batch.frames.flatten(0, 1)
        truth = batch.depth.flatten(0, 1)
        pred = self.models.depth_estimator.forward_depth(frames)
        loss = scale_shift_invariant_mse(pred, truth)
        return loss, {"ssi_mse": float(loss.detach())}

    @torch.no_grad()
    def _latents(self, images01: torch.Tensor) -> torch.Tensor:
        return self.models.encode(images01).contiguous()

    def _depth_condition(self, frames: torch.Tensor, crop: tuple[int, int]) -> torch.Tensor:
        with torch.no_grad():
            depth = self.models.depth_estimator.estimate(frames)  # the full frame, as at inference
            depth_latent = self.models.encode((_crop(depth_to_vae_input(depth), crop, self.config.crop) + 1) / 2)
        return self.models.depth_encoder(depth_latent)

    def _denoise_loss(self, batch: StageBatch, generator: torch.Generator):
        m, cfg, name = self.models, self.config, self.stage.name
        b, f = batch.frames.shape[:2]
        frames = batch.frames.flatten(0, 1)
        target_pixels = _crop(batch.targets[cfg.style].flatten(0, 1), batch.crop, cfg.crop)
        clean = self._latents(_crop(frames, batch.crop, cfg.crop))
        target = self._latents(target_pixels)
        use_depth = name in ("depth", "joint", "lora")
        cond = self._depth_condition(frames, batch.crop) if use_depth else None

        steps = len(cfg.t_index_list)
        per_group = sample_indices(cfg.t_index_list, cfg.t_jitter, b, generator)  # (T, B)
        indices = per_group.repeat_interleave(f, dim=1)  # (T, B*F)
        shape = clean.shape[1:]
        shared = torch.rand((), generator=generator) < 0.75  # the engine's default: one noise for every frame
        if bool(shared):
            noise = torch.randn((steps, b, 1, *shape), generator=generator).expand(-1, -1, f, *([-1] * len(shape)))
        else:
            noise = torch.randn((steps, b, f, *shape), generator=generator)
        noise = noise.reshape(steps, b * f, *shape)
        embeds = self.prompt_embeds.expand(b * f, -1, -1)

        def predict(z: torch.Tensor, idx: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
            m.condition(c)
            try:
                t = self.schedule.timesteps(idx)
                if not m.inflated:
                    return m.unet(z, t, encoder_hidden_states=embeds, return_dict=False)[0]
                assert m.context is not None
                m.context.begin_clip(f, device=z.device)
                # contiguous: a strided (B, C, F, h, w) view crashed torch 2.13's CPU backward (segfault)
                sample = z.reshape(b, f, *shape).permute(0, 2, 1, 3, 4).contiguous()
                out = m.unet(sample, t.view(b, f)[:, 0], encoder_hidden_states=embeds, return_dict=False)[0]
                return out.permute(0, 2, 1, 3, 4).reshape(b * f, *shape)
            finally:
                m.condition(None)

        result = unrolled_denoise_loss(predict, self.schedule, clean, target, cond, indices, noise)
        loss = result.loss
        info = {f"step{s}": v for s, v in enumerate(result.step_losses)}
        if self.stage.pixel_loss > 0:
            decoded = m.decode(result.final)
            pixel = F.l1_loss(decoded, target_pixels * 2 - 1)
            loss = loss + self.stage.pixel_loss * pixel
            info["pixel_l1"] = float(pixel.detach())
        return loss, info
