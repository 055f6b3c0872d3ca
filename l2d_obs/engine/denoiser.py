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
from typing import Callable

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
    _rows: dict = field(default_factory=dict, repr=False, compare=False)  # (steps, dtype) -> StepRows

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

    def rows(self, steps: tuple[int, ...], dtype: torch.dtype) -> "StepRows":
        """The schedule's values for batch rows at ``steps``, on the schedule's device and ready to
        broadcast. Picked with Python ints (no host-built index, no host read) and memoised: the
        steady state reuses one StepRows per row configuration."""
        key = (steps, dtype)
        rows = self._rows.get(key)
        if rows is None:
            def pick(table: torch.Tensor) -> torch.Tensor:
                return torch.stack([table[s] for s in steps])

            def per_row(table: torch.Tensor) -> torch.Tensor:
                return pick(table).view(-1, 1, 1, 1).to(dtype)

            def next_of(s: int) -> tuple[torch.Tensor, torch.Tensor] | None:
                if s + 1 >= self.num_steps:
                    return None
                return self.sqrt_alpha[s + 1].to(dtype), self.sqrt_one_minus_alpha[s + 1].to(dtype)

            rows = self._rows[key] = StepRows(
                steps=steps,
                timesteps=pick(self.timesteps),
                sqrt_alpha=per_row(self.sqrt_alpha),
                sqrt_one_minus_alpha=per_row(self.sqrt_one_minus_alpha),
                c_skip=per_row(self.c_skip),
                c_out=per_row(self.c_out),
                renoise=tuple(next_of(s) for s in steps),
            )
        return rows

    def to(self, device) -> "LCMSchedule":
        return LCMSchedule(*(t.to(device) for t in (self.timesteps, self.sqrt_alpha, self.sqrt_one_minus_alpha, self.c_skip, self.c_out)))


@dataclass(frozen=True)
class StepRows:
    """An LCMSchedule's values for the rows of one call (device tensors, (R, 1, 1, 1) in the latents'
    dtype; ``renoise[i]``: sqrt(a), sqrt(1 - a) of row i's next step, None for the last step)."""

    steps: tuple[int, ...]
    timesteps: torch.Tensor  # (R,) long
    sqrt_alpha: torch.Tensor
    sqrt_one_minus_alpha: torch.Tensor
    c_skip: torch.Tensor
    c_out: torch.Tensor
    renoise: tuple[tuple[torch.Tensor, torch.Tensor] | None, ...]


def _host_steps(steps) -> tuple[int, ...]:
    """Row steps as Python ints: a list/tuple, or a CPU tensor (never read a device tensor here)."""
    if isinstance(steps, torch.Tensor):
        if steps.device.type != "cpu":
            raise ValueError("pass row steps as Python ints or a CPU tensor (reading a device tensor blocks)")
        return tuple(int(x) for x in steps.tolist())
    return tuple(int(x) for x in steps)


@dataclass
class UNetCall:
    """What the denoiser needs from the model: eps = predict(z, timesteps, cond), for N frames."""

    unet: torch.nn.Module
    context: TemporalContext
    prompt_embeds: torch.Tensor  # (1, seq, dim)
    conv_in_residual: list = field(default_factory=lambda: [None])  # shared with the conv_in hook
    stream_unet: torch.nn.Module | None = None  # what stream-batch calls run (the compiled UNet); None: unet
    observer: Callable[[TemporalContext], None] | None = None  # called before each UNet call (outside compile)

    def __call__(self, z: torch.Tensor, timesteps: torch.Tensor, cond: torch.Tensor | None, frames_axis: bool) -> torch.Tensor:
        """z (N, 4, h, w). frames_axis=True: N frames of one stream (warmup/reference/clip);
        False: N batch rows of one frame each (stream batch)."""
        n = z.shape[0]
        sample = z.permute(1, 0, 2, 3).unsqueeze(0) if frames_axis else z.unsqueeze(2)  # (B, C, F, h, w)
        encoder_states = self.prompt_embeds.expand(n, -1, -1)
        if self.observer is not None:
            self.observer(self.context)
        self.conv_in_residual[0] = cond
        try:
            unet = self.unet if frames_axis or self.stream_unet is None else self.stream_unet
            out = unet(sample, timesteps, encoder_hidden_states=encoder_states, return_dict=False)[0]
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

    def _update(self, jobs: list[LatentJob], eps: torch.Tensor, steps) -> None:
        """One LCM step for each job: x0 from eps, boundary-condition mix, re-noise for the next step.
        ``steps``: each job's step, as Python ints or a CPU tensor."""
        z = torch.cat([j.z for j in jobs])
        r = self.schedule.rows(_host_steps(steps), z.dtype)
        x0 = (z - r.sqrt_one_minus_alpha * eps) / r.sqrt_alpha
        denoised = r.c_out * x0 + r.c_skip * z
        for i, job in enumerate(jobs):
            step = r.steps[i]
            renoise = r.renoise[i]
            if renoise is not None:
                nxt = step + 1
                job.z = renoise[0] * denoised[i : i + 1] + renoise[1] * job.noise[nxt : nxt + 1]
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
            rows = self.schedule.rows(tuple(steps), z.dtype)  # device values, memoised: no upload
            eps = self.call(z, rows.timesteps, cond, frames_axis=False)
        except BaseException:
            self.context.rows = None  # nothing committed: the call can be retried or the stream reset
            raise
        self.context.end_stream()
        self._update(jobs, eps, steps)
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
