"""Per-frame cost of the engine's schedules and of the two baselines it is measured against.

Every variant sees the same frames. Frames ``0..L-1`` warm it up and fill the window (the recompute
baseline's clip is only full from frame L on); frames ``L..`` are timed. Each timed frame is split
into encode (VAE + depth), denoise (UNet + LCM update) and decode (VAE), so UNet-only ratios can be
read apart from the per-frame VAE/depth cost. Repetitions interleave the variants so a neighbour's
load spike does not hit one variant only; each figure is the median over every timed frame.

Variants:
- pipelined: the stream batch with the KV cache (the engine's default schedule: ``cached``);
- sequential: the same cache, each frame through its T steps one UNet call at a time;
- recompute: no cache; for each new frame, at every step the UNet re-runs the clip of the frames
  in its streaming window (``engine.windows.stream_window``: Lw warmup frames + recent frames + the
  new frame) with the training mask (``begin_clip``) — the paper's "without KV cache" baseline (Table 3);
- no_temporal: a UNet2DConditionModel with the same non-motion weights, stream batch, no window.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field

import torch

from ..engine.denoiser import LatentJob
from ..engine.temporal import AttentionMode
from ..engine.windows import stream_window
from ..frames import Frame
from .config import BenchConfig
from .setup import BenchEngine
from .timing import Clock, PhaseSample, VariantTiming, peak_rss_bytes

log = logging.getLogger(__name__)

VARIANTS = ("pipelined", "sequential", "recompute", "no_temporal")


@dataclass
class ClipRecord:
    """What the recompute baseline keeps of a past frame: its noisy latent entering each step."""

    z_per_step: list[torch.Tensor]
    cond: torch.Tensor | None


@dataclass
class CallCounter:
    """Counts motion-UNet calls per attention mode and the frames of each CLIP call (a pre-hook)."""

    modes: collections.Counter = field(default_factory=collections.Counter)
    clip_frames: list[int] = field(default_factory=list)


@dataclass
class EngineResult:
    timings: dict[str, VariantTiming]
    warmup_ms: float
    cache_bytes: int
    cache_bytes_from_tensors: int
    cache_layers: int
    peak_rss_bytes: int
    peak_gpu_bytes: int | None
    calls: dict[str, dict[str, int]]  # variant -> attention mode -> motion-UNet calls
    recompute_clip_frames: int  # frames per clip call once the window is full
    model: dict[str, int]

    def to_dict(self) -> dict:
        t = self.timings

        def ms(name: str) -> float:
            return round(t[name].ms_per_frame, 3)

        def unet(name: str) -> float:
            return round(t[name].denoise_ms, 3)

        def ratio(a: float, b: float) -> float:
            return round(a / b, 3) if b > 0 else float("nan")

        pipe, seq, rec, flat = (t[n] for n in VARIANTS)
        return {
            "cached_ms_per_frame": ms("pipelined"),
            "cached_schedule": "pipelined",
            "recompute_ms_per_frame": ms("recompute"),
            "sequential_ms_per_frame": ms("sequential"),
            "pipelined_ms_per_frame": ms("pipelined"),
            "no_temporal_ms_per_frame": ms("no_temporal"),
            "unet_cached_ms_per_frame": unet("pipelined"),
            "unet_recompute_ms_per_frame": unet("recompute"),
            "unet_sequential_ms_per_frame": unet("sequential"),
            "unet_pipelined_ms_per_frame": unet("pipelined"),
            "unet_no_temporal_ms_per_frame": unet("no_temporal"),
            "ratios": {
                "recompute_over_cached": ratio(rec.ms_per_frame, pipe.ms_per_frame),
                "unet_recompute_over_cached": ratio(rec.denoise_ms, pipe.denoise_ms),
                # Same T UNet calls per frame on both sides: what the cache alone saves.
                "unet_recompute_over_sequential": ratio(rec.denoise_ms, seq.denoise_ms),
                "sequential_over_pipelined": ratio(seq.ms_per_frame, pipe.ms_per_frame),
                "cached_over_no_temporal": ratio(pipe.ms_per_frame, flat.ms_per_frame),
                "unet_cached_over_no_temporal": ratio(pipe.denoise_ms, flat.denoise_ms),
            },
            "warmup_ms": round(self.warmup_ms, 3),
            "cache_bytes": self.cache_bytes,
            "cache_bytes_from_tensors": self.cache_bytes_from_tensors,
            "cache_layers": self.cache_layers,
            "peak_rss_bytes": self.peak_rss_bytes,
            "peak_gpu_bytes": self.peak_gpu_bytes,
            "recompute_clip_frames": self.recompute_clip_frames,
            "unet_calls": self.calls,
            "model": self.model,
            "variants": {name: timing.summary() for name, timing in t.items()},
        }


class EngineBench:
    def __init__(self, bench: BenchEngine, cfg: BenchConfig, frames: list[Frame]) -> None:
        if len(frames) <= cfg.window:
            raise ValueError(f"need more than L={cfg.window} frames, got {len(frames)}")
        self.b = bench
        self.cfg = cfg
        self.frames = frames
        self.engine = bench.engine
        self.clock = Clock(bench.device)
        self.counter = CallCounter()
        self._calls: dict[str, collections.Counter] = {}
        self._clip_frames = 0
        self.recompute_latents: dict[int, torch.Tensor] = {}  # frame index -> final latent (last run)
        self.warmup_ms: list[float] = []
        self.cache_bytes = 0
        self.cache_bytes_from_tensors = 0
        # Which attention mode each motion-UNet call really ran in (observed outside any compiled code).
        self.engine.denoiser.call.observer = self._count_call

    def _count_call(self, ctx) -> None:
        self.counter.modes[ctx.mode.value] += 1
        if ctx.mode is AttentionMode.CLIP and ctx.frames_layout is not None:
            self.counter.clip_frames.append(int(ctx.frames_layout.q_positions.shape[0]))

    def _timed(self, frame: Frame) -> bool:
        return frame.index >= self.cfg.window

    def _sample(self, t0: float, t1: float, t2: float, t3: float) -> PhaseSample:
        return PhaseSample((t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000)

    # -- cached schedules ----------------------------------------------------------------------------

    def _warm_engine(self) -> None:
        """The first Lw frames through the engine's public push (its own warmup); untimed."""
        engine = self.engine
        engine.reset()
        t0 = self.clock.now()
        for frame in self.frames[: self.cfg.warmup]:
            engine.push(frame)
        self.warmup_ms.append((self.clock.now() - t0) * 1000)
        cache = engine.cache
        self.cache_bytes = cache.nbytes()
        # Counted again from the storages themselves (what the allocator really holds).
        self.cache_bytes_from_tensors = sum(
            t.untyped_storage().nbytes() for i in range(cache.num_layers) for t in (cache.layer(i).k, cache.layer(i).v)
        )

    def run_cached(self, pipelined: bool) -> list[PhaseSample]:
        engine, clock = self.engine, self.clock
        self._warm_engine()
        samples = []
        for frame in self.frames[self.cfg.warmup :]:
            t0 = clock.now()
            job = engine.make_job(frame)
            t1 = clock.now()
            done = engine.denoiser.push(job) if pipelined else engine.denoiser.run_sequential(job)
            t2 = clock.now()
            if done is not None:
                engine.decode_latent(done.denoised)
            t3 = clock.now()
            if self._timed(frame):
                samples.append(self._sample(t0, t1, t2, t3))
        engine.denoiser.drain()
        engine.reset()
        return samples

    # -- no cache: the clip recompute ----------------------------------------------------------------

    def run_recompute(self) -> list[PhaseSample]:
        call = self.engine.denoiser.call
        eager, call.unet = call.unet, self.b.clip_unet_call or call.unet  # compiled alike when compile is on
        try:
            return self._run_recompute()
        finally:
            call.unet = eager

    def _run_recompute(self) -> list[PhaseSample]:
        engine, clock, cfg = self.engine, self.clock, self.cfg
        den, ctx, sched = engine.denoiser, engine.context, engine.schedule
        steps = sched.num_steps
        engine.reset()
        # Warmup frames: the clip of Lw frames, bidirectional (the training mask's first block).
        jobs = [den.start(engine.make_job(f)) for f in self.frames[: cfg.warmup]]
        warm = [ClipRecord([], j.cond) for j in jobs]
        cond = None if jobs[0].cond is None else torch.cat([j.cond for j in jobs])
        for step in range(steps):
            for job, rec in zip(jobs, warm):
                rec.z_per_step.append(job.z)
            ctx.begin_clip(len(jobs), device=engine.device)
            eps = den.call(torch.cat([j.z for j in jobs]), sched.timesteps[step], cond, frames_axis=True)
            den.advance(jobs, eps)
        self.recompute_latents = {j.index: j.denoised for j in jobs}
        # What each past frame left for later clips, by stream position; kept while a window still holds it.
        records: dict[int, ClipRecord] = dict(enumerate(warm))
        samples = []
        for n, frame in enumerate(self.frames[cfg.warmup :], start=cfg.warmup):
            t0 = clock.now()
            job = den.start(engine.make_job(frame))
            t1 = clock.now()
            window = stream_window(cfg.window, cfg.warmup, n)
            record = self._recompute_frame(job, [records[k] for k in window if k != n])
            t2 = clock.now()
            engine.decode_latent(job.denoised)
            t3 = clock.now()
            records[n] = record
            needed = set(stream_window(cfg.window, cfg.warmup, n + 1))
            records = {k: r for k, r in records.items() if k in needed}
            self.recompute_latents[job.index] = job.denoised
            if self._timed(frame):
                samples.append(self._sample(t0, t1, t2, t3))
        engine.reset()
        return samples

    def _recompute_frame(self, job: LatentJob, clip: list[ClipRecord]) -> ClipRecord:
        engine = self.engine
        den, ctx, sched = engine.denoiser, engine.context, engine.schedule
        frames = len(clip) + 1
        cond = None if job.cond is None else torch.cat([r.cond for r in clip] + [job.cond])
        record = ClipRecord([], job.cond)
        for step in range(sched.num_steps):
            record.z_per_step.append(job.z)
            ctx.begin_clip(frames, device=engine.device)
            z = torch.cat([r.z_per_step[step] for r in clip] + [job.z])
            eps = den.call(z, sched.timesteps[step], cond, frames_axis=True)
            den.advance([job], eps[-1:])  # only the new frame moves on
        return record

    # -- no motion modules ---------------------------------------------------------------------------

    def run_no_temporal(self) -> list[PhaseSample]:
        """Stream batch over the 2D UNet: what a per-frame (StreamDiffusion-like) pipeline costs."""
        engine, clock, b = self.engine, self.clock, self.b
        den, sched = engine.denoiser, engine.schedule
        engine.reset()
        in_flight: list[LatentJob] = []
        samples = []
        first = max(0, self.cfg.window - sched.num_steps)  # enough to fill the pipeline before timing
        for frame in self.frames[first:]:
            t0 = clock.now()
            job = den.start(engine.make_job(frame))
            t1 = clock.now()
            in_flight.insert(0, job)
            z = torch.cat([j.z for j in in_flight])
            timesteps = sched.rows(tuple(j.step for j in in_flight), z.dtype).timesteps  # device values, memoised
            b.conv_in_residual[0] = None if job.cond is None else torch.cat([j.cond for j in in_flight])
            with torch.no_grad():
                eps = b.unet2d_call(z, timesteps, encoder_hidden_states=engine.prompt_embeds.expand(len(in_flight), -1, -1)).sample
            b.conv_in_residual[0] = None
            den.advance(in_flight, eps)
            done = in_flight.pop() if in_flight[-1].step == sched.num_steps else None
            t2 = clock.now()
            if done is not None:
                engine.decode_latent(done.denoised)
            t3 = clock.now()
            if self._timed(frame):
                samples.append(self._sample(t0, t1, t2, t3))
        engine.reset()
        return samples

    # -- all of it -----------------------------------------------------------------------------------

    def _run_variant(self, name: str) -> list[PhaseSample]:
        self.counter = CallCounter()
        if name == "pipelined":
            samples = self.run_cached(pipelined=True)
        elif name == "sequential":
            samples = self.run_cached(pipelined=False)
        elif name == "recompute":
            samples = self.run_recompute()
        elif name == "no_temporal":
            samples = self.run_no_temporal()
        else:
            raise ValueError(name)
        self._calls.setdefault(name, collections.Counter()).update(self.counter.modes)
        if name == "recompute":
            self._clip_frames = max(self.counter.clip_frames, default=0)
        return samples

    def run(self, progress: bool = False) -> EngineResult:
        from tqdm.auto import tqdm

        cfg = self.cfg
        timings = {name: VariantTiming(name) for name in VARIANTS}
        bar = tqdm(total=len(VARIANTS) * (cfg.repeats + int(cfg.warm_pass)), desc="bench engine", unit="run",
                   disable=not progress, dynamic_ncols=True)
        if self.b.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.b.device)
        with torch.no_grad():
            # One untimed pass of each variant: allocator, caches, lazy inits, compilation.
            if cfg.warm_pass:
                for name in VARIANTS:
                    bar.set_postfix_str(f"warm pass: {name}")
                    self._run_variant(name)
                    bar.update()
            self._calls.clear()
            for rep in range(cfg.repeats):
                for name in VARIANTS:
                    bar.set_postfix_str(f"repetition {rep + 1}/{cfg.repeats}: {name}")
                    timings[name].add_repetition(self._run_variant(name))
                    bar.update()
                log.info("engine repetition %d/%d: %s", rep + 1, cfg.repeats,
                         ", ".join(f"{n} {timings[n].rep_means_ms[-1]:.1f} ms" for n in VARIANTS))
        bar.close()
        peak_gpu = int(torch.cuda.max_memory_allocated(self.b.device)) if self.b.device.type == "cuda" else None
        return EngineResult(
            timings=timings,
            warmup_ms=sorted(self.warmup_ms)[len(self.warmup_ms) // 2],
            cache_bytes=self.cache_bytes,
            cache_bytes_from_tensors=self.cache_bytes_from_tensors,
            cache_layers=self.engine.cache.num_layers,
            peak_rss_bytes=peak_rss_bytes(),
            peak_gpu_bytes=peak_gpu,
            calls={name: dict(counter) for name, counter in self._calls.items()},
            recompute_clip_frames=self._clip_frames,
            model=model_facts(self.b),
        )


def _params(module) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def model_facts(b: BenchEngine) -> dict[str, int]:
    """Sizes that show which architecture was measured (parameters, temporal layers, PE length)."""
    c = b.engine.components
    processors = b.engine.context.processors
    depth_model = getattr(c.depth_estimator, "model", None)
    return {
        "unet_params": _params(c.unet),
        "no_temporal_unet_params": _params(b.unet2d),
        "temporal_attentions": len(processors),
        "motion_positions": int(processors[0].position_table.pe.shape[1]) if processors else 0,
        "text_encoder_params": _params(c.text_encoder),
        "text_hidden_size": int(c.text_encoder.config.hidden_size),
        "vae_params": _params(c.vae),
        "depth_encoder_params": _params(c.depth_encoder),
        "depth_estimator_params": _params(depth_model),
    }
