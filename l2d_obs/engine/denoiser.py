"""Stream-batch LCM denoising over latents (StreamDiffusion's pipelining + Live2Diff's KV cache).

A frame in flight is a ``LatentJob`` (its clean latent, its noise, its conditioning). The
schedule math (``LCMSchedule.add_noise``/``step``) is public and matches diffusers' LCMScheduler row
by row. The first ``warmup`` frames are denoised together, step by
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
        steps = tuple(int(s) for s in steps)
        key = (steps, dtype)
        rows = self._rows.get(key)
        if rows is None:
            for s in steps:
                if not 0 <= s < self.num_steps:
                    raise ValueError(f"step {s} outside 0..{self.num_steps - 1}")

            def per_row(table: torch.Tensor, index=steps) -> torch.Tensor:
                return torch.stack([table[s] for s in index]).view(-1, 1, 1, 1).to(dtype)

            # The last step has no next one: its re-noise is the identity (1 * denoised + 0 * noise).
            last = tuple(s + 1 >= self.num_steps for s in steps)
            nxt = [min(s + 1, self.num_steps - 1) for s in steps]
            keep = torch.tensor([0.0 if x else 1.0 for x in last]).view(-1, 1, 1, 1).to(self.sqrt_alpha.device, dtype)
            rows = self._rows[key] = StepRows(
                steps=steps,
                timesteps=torch.stack([self.timesteps[s] for s in steps]),
                sqrt_alpha=per_row(self.sqrt_alpha),
                sqrt_one_minus_alpha=per_row(self.sqrt_one_minus_alpha),
                c_skip=per_row(self.c_skip),
                c_out=per_row(self.c_out),
                next_sqrt_alpha=per_row(self.sqrt_alpha, nxt) * keep + (1 - keep),
                next_sqrt_one_minus_alpha=per_row(self.sqrt_one_minus_alpha, nxt) * keep,
                last=last,
            )
        return rows

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, steps) -> torch.Tensor:
        """Row i noised to the timestep of ``steps[i]``: sqrt(a) x0 + sqrt(1 - a) noise (SDEdit, and
        the re-noise between steps). x0/noise (R, 4, h, w); steps: R Python ints, or one for all rows."""
        r = self.rows(host_steps(steps, x0.shape[0]), x0.dtype)
        return r.sqrt_alpha * x0 + r.sqrt_one_minus_alpha * noise

    def step(self, z: torch.Tensor, eps: torch.Tensor, steps, next_noise: torch.Tensor) -> "LCMStepOutput":
        """One LCM step per row (the stream batch's scheduler step): x0 from eps, the boundary-condition
        mix ``denoised = c_out x0 + c_skip z``, and ``prev_sample``: denoised re-noised with
        ``next_noise`` to the row's next step, or denoised itself for a row at the last step. Row by row
        this is diffusers' ``LCMScheduler.step`` over this schedule's timesteps (tested)."""
        r = self.rows(host_steps(steps, z.shape[0]), z.dtype)
        x0 = (z - r.sqrt_one_minus_alpha * eps) / r.sqrt_alpha
        denoised = r.c_out * x0 + r.c_skip * z
        prev = r.next_sqrt_alpha * denoised + r.next_sqrt_one_minus_alpha * next_noise
        return LCMStepOutput(prev_sample=prev, denoised=denoised, finished=r.last)

    def to(self, device) -> "LCMSchedule":
        return LCMSchedule(*(t.to(device) for t in (self.timesteps, self.sqrt_alpha, self.sqrt_one_minus_alpha, self.c_skip, self.c_out)))


@dataclass(frozen=True)
class StepRows:
    """An LCMSchedule's values for the rows of one call (device tensors, (R, 1, 1, 1) in the latents'
    dtype; ``next_*``: the re-noise coefficients of each row's next step, 1 and 0 at the last step)."""

    steps: tuple[int, ...]
    timesteps: torch.Tensor  # (R,) long
    sqrt_alpha: torch.Tensor
    sqrt_one_minus_alpha: torch.Tensor
    c_skip: torch.Tensor
    c_out: torch.Tensor
    next_sqrt_alpha: torch.Tensor
    next_sqrt_one_minus_alpha: torch.Tensor
    last: tuple[bool, ...]  # row i is at the last step


@dataclass(frozen=True)
class LCMStepOutput:
    prev_sample: torch.Tensor  # (R, 4, h, w): each row's input to its next step (denoised at the last step)
    denoised: torch.Tensor  # (R, 4, h, w)
    finished: tuple[bool, ...]  # rows whose denoised latent is final


def host_steps(steps, rows: int) -> tuple[int, ...]:
    """Row steps as Python ints: one int (every row), a list/tuple, or a CPU tensor (a device tensor
    is refused: reading it would block)."""
    if isinstance(steps, int):
        return (steps,) * rows
    if isinstance(steps, torch.Tensor):
        if steps.device.type != "cpu":
            raise ValueError("pass row steps as Python ints or a CPU tensor (reading a device tensor blocks)")
        steps = steps.tolist()
    steps = tuple(int(x) for x in steps)
    if len(steps) != rows:
        raise ValueError(f"{len(steps)} steps for {rows} rows")
    return steps


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
    """Drives LatentJobs through warmup and the stream batch; owns the pipeline's frames in flight.

    The latent-level streaming API: ``warmup``, ``push``/``run_sequential``, ``drain``, or ``stream``
    for a whole sequence (latents, noise and conditioning in, denoised latents out)."""

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

    # -- the LCM math, per job ---------------------------------------------------------------------

    def start(self, job: LatentJob) -> LatentJob:
        """SDEdit: noise the clean latent to the first timestep."""
        job.z = self.schedule.add_noise(job.latent, job.noise[0:1], 0)
        job.step = 0
        return job

    def advance(self, jobs: list[LatentJob], eps: torch.Tensor) -> None:
        """One LCM step for each job (at its own ``step``): a finished job gets ``denoised``, the others
        their re-noised input to the next step."""
        steps = tuple(j.step for j in jobs)
        last = self.schedule.num_steps - 1
        z = torch.cat([j.z for j in jobs])
        # Each job's noise for its next step (the last step's row ignores it: coefficient 0).
        noise = torch.cat([j.noise[min(s + 1, last) : min(s + 1, last) + 1] for j, s in zip(jobs, steps)])
        out = self.schedule.step(z, eps, steps, noise)
        for i, job in enumerate(jobs):
            if out.finished[i]:
                job.denoised, job.z = out.denoised[i : i + 1], None
            else:
                job.z = out.prev_sample[i : i + 1]
            job.step += 1

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
            try:
                eps = self.call(torch.cat([j.z for j in jobs]), self.schedule.timesteps[step], cond, frames_axis=True)
            except BaseException:
                self.context.abort()
                raise
            self.context.commit()
            self.advance(jobs, eps)
        return jobs

    @torch.no_grad()
    def _stream_call(self) -> LatentJob | None:
        """One UNet call over every frame in flight; returns the frame that finished, if any."""
        jobs = self.in_flight
        steps = tuple(j.step for j in jobs)
        self.context.begin_stream(steps, device=jobs[0].z.device)
        try:
            z = torch.cat([j.z for j in jobs])
            cond = None if jobs[0].cond is None else torch.cat([j.cond for j in jobs])
            rows = self.schedule.rows(steps, z.dtype)  # device values, memoised: no upload
            eps = self.call(z, rows.timesteps, cond, frames_axis=False)
        except BaseException:
            self.context.abort()  # nothing committed: the call can be retried or the stream reset
            raise
        self.context.commit()
        self.advance(jobs, eps)
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

    @torch.no_grad()
    def stream(self, jobs: list[LatentJob], pipelined: bool = True) -> list[LatentJob]:
        """A whole sequence from a fresh cache: the first ``warmup`` jobs warm it up, the rest stream
        (stream batch, or each through its steps alone), then the pipeline drains. Returns the jobs,
        each with its ``denoised`` latent, in input order. The cache is reset before and after."""
        self.reset()
        try:
            warm = jobs[: self.context.warmup]
            finished = list(self.warmup(warm)) if warm else []
            for job in jobs[len(warm) :]:
                done = self.push(job) if pipelined else self.run_sequential(job)
                if done is not None:
                    finished.append(done)
            finished += self.drain()
        finally:
            self.reset()
        if [id(j) for j in finished] != [id(j) for j in jobs]:
            raise RuntimeError("frames left the pipeline out of order")  # an invariant, never expected
        return finished
