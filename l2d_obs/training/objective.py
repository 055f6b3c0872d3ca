"""The training objective: the engine's own few-step LCM SDEdit, unrolled, supervised at every step.

At inference (``engine/denoiser.py``) a frame's latent is noised to the first timestep of the profile's
``t_index_list``; each step predicts eps, forms ``x0`` and the boundary-condition mix
``denoised = c_out * x0 + c_skip * z``, and re-noises ``denoised`` to the next timestep. Training runs
exactly that chain (coefficients from the same ``LCMSchedule``) and asks every step's ``denoised`` to be
the *target stylisation's* latent. The input to step s+1 is the model's own (detached) step-s output,
re-noised, as at inference. This is direct x0 training on the engine's timesteps: the model becomes a
few-step translator by construction, with no teacher and no LCM-LoRA. Timestep indices are jittered by
+-t_jitter so nearby t_index_lists work too; noise is shared by all frames of a clip most of the time
(the engine's ``noise = "fixed"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..engine.denoiser import LCMSchedule

# eps = predict(z (N,4,h,w), timestep index per sample (N,), cond (N,C,h,w) | None) -> (N,4,h,w)
EpsPredictor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


@dataclass
class FullSchedule:
    """LCM coefficients at every index of the num_inference_steps grid (indexed like t_index_list)."""

    table: LCMSchedule

    @classmethod
    def from_scheduler(cls, scheduler, num_inference_steps: int) -> "FullSchedule":
        return cls(LCMSchedule.from_scheduler(scheduler, tuple(range(num_inference_steps)), num_inference_steps))

    def timesteps(self, index: torch.Tensor) -> torch.Tensor:
        return self.table.timesteps[index]


def _col(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.dim() - 1))).to(like.dtype)


@dataclass
class DenoiseResult:
    loss: torch.Tensor
    final: torch.Tensor  # (N,4,h,w) the last step's denoised latent (with grad)
    step_losses: list[float]


def sample_indices(t_index_list: tuple[int, ...], jitter: int, groups: int, generator: torch.Generator) -> torch.Tensor:
    """(T, groups) grid indices: each step's index jittered independently, kept strictly increasing."""
    base = torch.tensor(t_index_list, dtype=torch.long).view(-1, 1).expand(-1, groups)
    if jitter <= 0:
        return base.clone()
    offsets = torch.randint(-jitter, jitter + 1, (1, groups), generator=generator)  # one shift per group
    return base + offsets  # a shared shift keeps the steps ordered and their spacing as configured


def unrolled_denoise_loss(
    predict: EpsPredictor,
    schedule: FullSchedule,
    clean: torch.Tensor,
    target: torch.Tensor,
    cond: torch.Tensor | None,
    indices: torch.Tensor,
    noise: torch.Tensor,
) -> DenoiseResult:
    """clean/target (N,4,h,w) latents of the input and of its stylisation; indices (T, N) grid indices;
    noise (T, N, 4, h, w). Returns the summed per-step MSE to the target."""
    tab = schedule.table
    steps = indices.shape[0]
    z = _col(tab.sqrt_alpha[indices[0]], clean) * clean + _col(tab.sqrt_one_minus_alpha[indices[0]], clean) * noise[0]
    total = clean.new_zeros(())
    step_losses: list[float] = []
    denoised = clean
    for s in range(steps):
        idx = indices[s]
        eps = predict(z, idx, cond)
        x0 = (z - _col(tab.sqrt_one_minus_alpha[idx], z) * eps) / _col(tab.sqrt_alpha[idx], z)
        denoised = _col(tab.c_out[idx], z) * x0 + _col(tab.c_skip[idx], z) * z
        loss = F.mse_loss(denoised, target)
        total = total + loss
        step_losses.append(float(loss.detach()))
        if s + 1 < steps:
            nxt = indices[s + 1]
            # The next step starts from this step's own output, as at inference (truncated backprop).
            z = _col(tab.sqrt_alpha[nxt], z) * denoised.detach() + _col(tab.sqrt_one_minus_alpha[nxt], z) * noise[s + 1]
    return DenoiseResult(loss=total, final=denoised, step_losses=step_losses)


def scale_shift_invariant_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MiDaS-style depth loss: per image, the best scale and shift of the prediction, then MSE.

    The engine normalises every depth map per frame, so only relative depth matters."""
    p = prediction.flatten(1)
    t = target.flatten(1)
    p_mean, t_mean = p.mean(1, keepdim=True), t.mean(1, keepdim=True)
    pc, tc = p - p_mean, t - t_mean
    scale = (pc * tc).sum(1, keepdim=True) / (pc * pc).sum(1, keepdim=True).clamp_min(1e-8)
    aligned = scale * pc + t_mean
    return F.mse_loss(aligned, t)


# Opponent colour axes of RGB: green against magenta, blue against yellow (rows sum to 0: no luminance).
_OPPONENT = torch.tensor([[-0.5, 1.0, -0.5], [-0.5, -0.5, 1.0]])


def opponent_chroma(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> (N, 2, H, W): the colour an autoencoder must keep apart from luminance."""
    return torch.einsum("oc,nchw->nohw", _OPPONENT.to(images), images)


def latent_regulariser(latents: torch.Tensor) -> torch.Tensor:
    """Keep the autoencoder's latents centred and well inside the decoder's +-3 clamp.

    Their scale is left free and calibrated afterwards (``image_dependent_std``), as SD's 0.18215 is:
    forcing unit spread here was measured to make the encoder add a fixed, image-independent spatial
    pattern (std 0.58 of 0.65), which carries no picture and leaves the picture drowned by SDEdit noise."""
    flat = latents.transpose(0, 1).flatten(1)
    return flat.mean(1).pow(2).mean() + torch.relu(latents.abs() - 2.5).pow(2).mean()


def image_dependent_std(latents: torch.Tensor) -> float:
    """Spread of latents across pictures (each position's mean over the batch removed): what the
    latent scaling factor normalises, so that scaled latents carry the picture at unit spread."""
    return float((latents - latents.mean(0, keepdim=True)).std())
