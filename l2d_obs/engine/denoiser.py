"""Stream-batch LCM denoising over latents (StreamDiffusion's pipelining + Live2Diff's KV cache).

A frame in flight is a ``LatentJob``. The first ``warmup`` frames are denoised together, step by
step, with bidirectional attention. After that every UNet call carries one row per frame in flight:
row s holds the frame that entered s calls ago, at denoising step s, and reads/writes the cache of
step s. Rows exist only for real frames: the pipeline fills and drains with fewer rows, so no
placeholder latent ever writes K/V that a real frame can see.

Since every step has its own cache and frames pass through each step in input order, the pipelined
schedule computes exactly what running each frame through its steps one after the other does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .temporal import TemporalContext


@dataclass
class LatentJob:
    """One frame on its way through the denoising steps."""

    index: int
    latent: torch.Tensor  # (1, 4, h, w): the VAE latent of the input frame (clean)
    noise: torch.Tensor  # (T, 4, h, w): noise[0] for SDEdit, noise[s] to re-noise before step s
    cond: torch.Tensor | None  # (1, C0, h, w): depth residual added after conv_in, or None
    payload: object = None  # carried through untouched (the input Frame)
    z: torch.Tensor | None = None  # current noisy latent, entering step `step`
    step: int = 0
    denoised: torch.Tensor | None = None  # the finished latent once step == T


@dataclass
class LCMSchedule:
    """The per-step quantities of an LCM schedule at the profile's t_index_list, from the scheduler."""

    timesteps: torch.Tensor  # (T,) long
    sqrt_alpha: torch.Tensor  # (T,)
    sqrt_one_minus_alpha: torch.Tensor  # (T,)
    c_skip: torch.Tensor  # (T,)
    c_out: torch.Tensor  # (T,)

    @classmethod
    def from_scheduler(cls, scheduler, t_index_list: tuple[int, ...], num_inference_steps: int) -> "LCMSchedule":
        scheduler.set_timesteps(num_inference_steps)
        all_t = scheduler.timesteps
        if max(t_index_list) >= len(all_t):
            raise ValueError(f"t_index_list {t_index_list} indexes past the {len(all_t)} scheduler timesteps")
        timesteps = torch.stack([all_t[i] for i in t_index_list]).long()
        alphas = scheduler.alphas_cumprod[timesteps].double()
        c_skip, c_out = zip(*(scheduler.get_scalings_for_boundary_condition_discrete(int(t)) for t in timesteps))
        return cls(
            timesteps=timesteps,
            sqrt_alpha=alphas.sqrt().float(),
            sqrt_one_minus_alpha=(1 - alphas).sqrt().float(),
            c_skip=torch.tensor([float(c) for c in c_skip]),
            c_out=torch.tensor([float(c) for c in c_out]),
        )

    @property
    def num_steps(self) -> int:
        return int(self.timesteps.shape[0])

    def to(self, device) -> "LCMSchedule":
        return LCMSchedule(*(t.to(device) for t in (self.timesteps, self.sqrt_alpha, self.sqrt_one_minus_alpha, self.c_skip, self.c_out)))


def _bcast(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.dim() - 1))).to(like.dtype)


@dataclass
class UNetCall:
    """What the denoiser needs from the model: eps = predict(z, timesteps, cond), for N frames."""

    unet: torch.nn.Module
    context: TemporalContext
    prompt_embeds: torch.Tensor  # (1, seq, dim)
    conv_in_residual: list = field(default_factory=lambda: [None])  # shared with the conv_in hook

    def __call__(self, z: torch.Tensor, timesteps: torch.Tensor, cond: torch.Tensor | None, frames_axis: bool) -> torch.Tensor:
        """z (N, 4, h, w). frames_axis=True: N frames of one stream (warmup/reference/clip);
        False: N batch rows of one frame each (stream batch)."""
        n = z.shape[0]
        sample = z.permute(1, 0, 2, 3).unsqueeze(0) if frames_axis else z.unsqueeze(2)  # (B, C, F, h, w)
        encoder_states = self.prompt_embeds.expand(n, -1, -1)
        self.conv_in_residual[0] = cond
        try:
            out = self.unet(sample, timesteps, encoder_hidden_states=encoder_states, return_dict=False)[0]
        finally:
            self.conv_in_residual[0] = None
        return out[0].permute(1, 0, 2, 3) if frames_axis else out[:, :, 0]


class StreamBatchDenoiser:
    """Drives LatentJobs through warmup and the stream batch; owns the pipeline's frames in flight."""

    def __init__(self, call: UNetCall, schedule: LCMSchedule) -> None:
        self.call = call
        self.schedule = schedule
        self.in_flight: list[LatentJob] = []  # ordered by step: in_flight[0] is at the lowest step

    @property
    def context(self) -> TemporalContext:
        return self.call.context

    def reset(self) -> None:
        self.in_flight.clear()
        self.context.reset()

    # -- the LCM math, per row ---------------------------------------------------------------------

    def start(self, job: LatentJob) -> LatentJob:
        """SDEdit: noise the clean latent to the first timestep."""
        s = self.schedule
        job.z = s.sqrt_alpha[0].to(job.latent.dtype) * job.latent + s.sqrt_one_minus_alpha[0].to(job.latent.dtype) * job.noise[0:1]
        job.step = 0
        return job

    def _update(self, jobs: list[LatentJob], eps: torch.Tensor, steps: torch.Tensor) -> None:
        """One LCM step for each job: x0 from eps, boundary-condition mix, re-noise for the next step."""
        s = self.schedule
        z = torch.cat([j.z for j in jobs])
        x0 = (z - _bcast(s.sqrt_one_minus_alpha[steps], z) * eps) / _bcast(s.sqrt_alpha[steps], z)
        denoised = _bcast(s.c_out[steps], z) * x0 + _bcast(s.c_skip[steps], z) * z
        for i, job in enumerate(jobs):
            step = int(steps[i])
            if step + 1 < s.num_steps:
                nxt = step + 1
                job.z = s.sqrt_alpha[nxt].to(z.dtype) * denoised[i : i + 1] + s.sqrt_one_minus_alpha[nxt].to(z.dtype) * job.noise[nxt : nxt + 1]
            else:
                job.denoised = denoised[i : i + 1]
                job.z = None
            job.step = step + 1

    # -- schedules -----------------------------------------------------------------------------

    @torch.no_grad()
    def warmup(self, jobs: list[LatentJob]) -> list[LatentJob]:
        """Denoise the warmup frames together, step by step, with bidirectional attention."""
        if self.in_flight:
            raise RuntimeError("warmup while frames are in flight")
        for job in jobs:
            self.start(job)
        cond = None if jobs[0].cond is None else torch.cat([j.cond for j in jobs])
        for step in range(self.schedule.num_steps):
            self.context.begin_warmup(step, len(jobs))
            z = torch.cat([j.z for j in jobs])
            eps = self.call(z, self.schedule.timesteps[step], cond, frames_axis=True)
            self._update(jobs, eps, torch.full((len(jobs),), step, dtype=torch.long))
        return jobs

    @torch.no_grad()
    def _stream_call(self) -> LatentJob | None:
        """One UNet call over every frame in flight; returns the frame that finished, if any."""
        jobs = self.in_flight
        steps = [j.step for j in jobs]
        self.context.begin_stream(steps, device=jobs[0].z.device)
        try:
            z = torch.cat([j.z for j in jobs])
            cond = None if jobs[0].cond is None else torch.cat([j.cond for j in jobs])
            steps_t = torch.tensor(steps, dtype=torch.long)
            eps = self.call(z, self.schedule.timesteps[steps_t], cond, frames_axis=False)
        except BaseException:
            self.context.rows = None  # nothing committed: the call can be retried or the stream reset
            raise
        self.context.end_stream()
        self._update(jobs, eps, steps_t)
        finished = None
        if jobs[-1].step == self.schedule.num_steps:
            finished = jobs.pop()
        return finished

    def push(self, job: LatentJob) -> LatentJob | None:
        """Pipelined: the new frame enters at step 0; returns the frame leaving the last step (lag T-1)."""
        self.in_flight.insert(0, self.start(job))
        return self._stream_call()

    def drain(self) -> list[LatentJob]:
        """Finish every frame in flight (end of stream): calls with fewer rows, no placeholders."""
        done = []
        while self.in_flight:
            finished = self._stream_call()
            if finished is not None:
                done.append(finished)
        return done

    def run_sequential(self, job: LatentJob) -> LatentJob:
        """The same frame through its T steps one call at a time (the pipelining-free schedule)."""
        if self.in_flight:
            raise RuntimeError("sequential denoising while a pipeline is in flight")
        self.in_flight.append(self.start(job))
        finished = None
        while finished is None:
            finished = self._stream_call()
        return finished
