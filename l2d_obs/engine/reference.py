"""The oracle: Live2Diff's streaming result computed without a KV cache (DESIGN §3).

One UNet pass per denoising step over the whole sequence, in which every temporal attention lets each
query frame gather its own streaming window (warmup frames + its recent frames, at the positions the
streaming path gives them, ``windows.stream_window``) from the same pass. Streaming with the cache must
equal it; that equivalence is what the tests pin the engine to. Not part of the product's frame path.
"""

from __future__ import annotations

import torch

from .denoiser import LatentJob, StreamBatchDenoiser


@torch.no_grad()
def reference_latents(denoiser: StreamBatchDenoiser, jobs: list[LatentJob]) -> list[torch.Tensor]:
    """Final latents of ``jobs`` (latent, noise, conditioning), in order, by the windowed reference.
    Uses the denoiser's UNet and schedule; touches neither its cache nor its frames in flight."""
    if not jobs:
        return []
    context, schedule = denoiser.context, denoiser.schedule
    device = jobs[0].latent.device
    for job in jobs:
        denoiser.start(job)
    cond = None if jobs[0].cond is None else torch.cat([j.cond for j in jobs])
    try:
        for step in range(schedule.num_steps):
            context.begin_reference(len(jobs), device=device)
            eps = denoiser.call(torch.cat([j.z for j in jobs]), schedule.timesteps[step], cond, frames_axis=True)
            denoiser.advance(jobs, eps)
    finally:
        context.end_windows()  # leave no reference layout behind
    return [j.denoised for j in jobs]
