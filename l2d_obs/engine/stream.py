"""The frame-in, frame-out Live2Diff engine.

    engine = build_engine(load_profile("tiny"))
    for frame in frames:                 # Frame: HxWx3 uint8 RGB at engine.width x engine.height
        for out in engine.push(frame):   # 0..n finished frames, each with its input's index
            show(out)
    leftovers = engine.flush()           # end of stream: everything still in flight

The first output arrives once ``warmup`` frames are in (they are denoised together and all of them
are returned); after that each push returns the frame that entered T-1 pushes earlier.
The engine knows nothing of OBS, cameras or sockets.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import EngineError, FrameSizeError
from ..frames import Frame
from ..progress import ProgressFn, no_progress
from .accel import Accelerations, apply_channels_last, compile_stream_unet, stream_variants
from .components import Live2DiffComponents
from .denoiser import LatentJob, LCMSchedule, StreamBatchDenoiser, UNetCall
from .kvcache import StreamKVCache
from .prefetch import EncodedFrame, Prefetched, SideStream
from .depth import depth_to_vae_input
from .temporal import patch_motion_modules
from .transfer import Uploader

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineSettings:
    """Everything the engine needs from a profile (typed, so the engine never reads TOML)."""

    width: int
    height: int
    prompt: str
    t_index_list: tuple[int, ...]
    num_inference_steps: int = 50
    window: int = 16
    warmup: int = 8
    seed: int = 42
    noise: str = "fixed"  # "fixed": the same noise for every frame; "fresh": new noise per frame
    pipelined: bool = True  # stream batch; False = each frame through its T steps alone
    similarity_filter: bool = False  # skip nearly static frames, repeating the last output
    similarity_threshold: float = 0.98  # skip when 1 - mean |frame - last pushed frame| / 255 >= this
    max_skips: int = 10  # consecutive skips at most (then a frame is pushed anyway)

    @classmethod
    def from_profile(cls, profile, **overrides) -> "EngineSettings":
        values = dict(
            width=profile.width,
            height=profile.height,
            prompt=profile.prompt,
            t_index_list=tuple(profile.t_index_list),
            num_inference_steps=profile.num_inference_steps,
            window=profile.window,
            warmup=profile.warmup,
            seed=profile.seed,
            noise=profile.noise,
            pipelined=profile.engine.pipelined,
            similarity_filter=profile.engine.similarity_filter,
            similarity_threshold=profile.engine.similarity_threshold,
            max_skips=profile.engine.max_skips,
        )
        values.update(overrides)
        return cls(**values)

    @property
    def steps(self) -> int:
        return len(self.t_index_list)


@dataclass
class EngineStats:
    frames_in: int = 0
    frames_out: int = 0
    last_ms: float = 0.0  # wall time of the last push that produced output
    mean_ms: float = 0.0  # running mean of steady-state pushes (after warmup)
    warmup_ms: float = 0.0
    cache_bytes: int = 0
    steady_pushes: int = 0
    switches: int = 0
    skipped: int = 0  # frames the similarity filter answered with the last output (no model run)
    last_switch_ms: float = 0.0  # re-warm time of the last style switch (preparation not included)


def frame_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """1 - mean |a - b| / 255 over every pixel (host pixels, ~1 ms at 512x512: no device work; a
    subsampled grid can miss a small moving object entirely)."""
    return 1.0 - float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()) / 255.0


def _mix_seed(seed: int, index: int) -> int:
    # A stable 63-bit mix of (seed, frame number): fresh noise that a seed reproduces exactly.
    return (seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + 1) % (2**63 - 1)


@dataclass(frozen=True)
class PreparedStyle:
    """A style ready to take over: its components on the device, prompt encoded, schedule computed.

    Preparing is the slow part of a switch (loading weights, encoding the prompt) and may run on any
    thread while the current style keeps streaming; ``StreamEngine.apply_style`` then only re-warms.
    """

    name: str
    settings: EngineSettings
    components: Live2DiffComponents
    prompt_embeds: torch.Tensor
    schedule: LCMSchedule
    device: torch.device = torch.device("cpu")  # where its components live: the engine runs there
    dtype: torch.dtype = torch.float32


def place_components(components: Live2DiffComponents, device: torch.device, dtype: torch.dtype) -> None:
    """Move every part to the device and precision, in inference mode (idempotent)."""
    c = components
    for module in (c.unet, c.vae, c.text_encoder, c.depth_encoder):
        if module is not None:
            module.to(device=device).eval().requires_grad_(False)
            if next(module.parameters()).dtype != dtype:  # skip no-op casts (diffusers warns on them)
                module.to(dtype=dtype)
    if c.depth_estimator is not None:
        c.depth_estimator.to(device, dtype)


@torch.no_grad()
def encode_prompt(components: Live2DiffComponents, prompt: str, device: torch.device) -> torch.Tensor:
    """CLIP text embeddings (1, 77, dim), honouring clip_skip (A1111 convention)."""
    c = components
    ids = c.tokenizer(
        prompt, padding="max_length", max_length=c.tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids.to(device)
    if c.clip_skip <= 1:
        return c.text_encoder(ids).last_hidden_state
    hidden = c.text_encoder(ids, output_hidden_states=True).hidden_states[-c.clip_skip]
    # transformers 5 puts the final norm on CLIPTextModel itself; 4.x had it under .text_model
    text_model = getattr(c.text_encoder, "text_model", c.text_encoder)
    return text_model.final_layer_norm(hidden)


def _check_window_fits(components: Live2DiffComponents, settings: EngineSettings) -> None:
    from .temporal import motion_transformers

    for transformer in motion_transformers(components.unet):
        for block in transformer.transformer_blocks:
            known = block.pos_embed.pe.shape[1]
            if settings.window > known:
                raise EngineError(f"window {settings.window} is longer than the {known} positions the motion modules know; "
                                  f"set window <= {known} in the profile")


def prepare_style(
    components: Live2DiffComponents,
    settings: EngineSettings,
    device: torch.device | str,
    dtype: torch.dtype,
    name: str = "",
) -> PreparedStyle:
    if settings.width % 8 or settings.height % 8:
        raise EngineError(f"resolution {settings.width}x{settings.height} is not a multiple of 8")
    device = torch.device(device)
    _check_window_fits(components, settings)
    place_components(components, device, dtype)
    # A private scheduler instance: set_timesteps mutates it, and styles may share components.
    scheduler = type(components.scheduler).from_config(components.scheduler.config)
    schedule = LCMSchedule.from_scheduler(scheduler, settings.t_index_list, settings.num_inference_steps).to(device)
    return PreparedStyle(name, settings, components, encode_prompt(components, settings.prompt, device), schedule,
                         device, dtype)


class StreamEngine:
    def __init__(
        self,
        components: Live2DiffComponents,
        settings: EngineSettings,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        name: str = "",
        accel: Accelerations | None = None,
        progress: ProgressFn = no_progress,
    ) -> None:
        self.device = torch.device(device)
        self.dtype = dtype
        self.accel = accel or Accelerations()
        self._upload = Uploader(self.device)
        self._side = SideStream(self.device)
        self._prefetched: Prefetched | None = None  # the next frame's encode, started during the last push
        self._progress = progress  # reports compilation at build; a style switch re-warms silently
        self._conv_in_residual: list = [None]
        self._hook = None
        self.recent_inputs: deque[Frame] = deque(maxlen=settings.warmup)  # for re-warming after a switch
        self.stats = EngineStats()
        self._install(prepare_style(components, settings, self.device, dtype, name))

    def _install(self, style: PreparedStyle) -> None:
        """Make ``style`` the active one: (re)patch its UNet, hook conv_in, fresh pipeline and cache."""
        c = style.components
        if self._hook is not None:
            self._hook.remove()
        self.style = style
        self.device, self.dtype = style.device, style.dtype  # a style may run elsewhere (its [engine] table)
        if self._upload.device != self.device:
            self._upload = Uploader(self.device)
        if self._side.device != self.device:
            self._side = SideStream(self.device)
        self._prefetched = None  # encoded by the old style's VAE and depth parts
        self.settings = style.settings
        self.components = c
        self.use_depth = c.depth_encoder is not None and c.depth_estimator is not None
        # Patching binds the UNet's temporal attention to this engine's new context (and drops old caches).
        self.context = patch_motion_modules(c.unet, self.settings.window, self.settings.warmup, self.settings.steps)
        self._hook = c.unet.conv_in.register_forward_hook(self._add_conv_in_residual)
        self.schedule = style.schedule
        self.prompt_embeds = style.prompt_embeds
        self.denoiser = StreamBatchDenoiser(UNetCall(c.unet, self.context, self.prompt_embeds, self._conv_in_residual), self.schedule)
        self.latent_scale = float(getattr(c.vae.config, "scaling_factor", 1.0))
        self._fixed_noise: torch.Tensor | None = None
        self._warmup_jobs: list[LatentJob] = []
        self._next_number = 0  # frames pushed since reset: drives the per-frame noise
        self._forget_similar()
        if self.recent_inputs.maxlen != self.settings.warmup:
            self.recent_inputs = deque(self.recent_inputs, maxlen=self.settings.warmup)
        self._accelerate()

    # -- accelerations (engine/accel.py) --------------------------------------------------------------

    def _accelerate(self) -> None:
        """Apply the engine's speed options to the installed style; with compile on, warm every
        compiled variant now so that nothing compiles mid-stream."""
        accel, c = self.accel, self.components
        if accel.channels_last:
            apply_channels_last(c)
        if not accel.compile:
            return
        variants = stream_variants(self.settings.steps, self.settings.window, self.settings.warmup, self.settings.pipelined)
        self.denoiser.call.stream_unet = compile_stream_unet(c.unet, accel, len(variants))
        self.warm_compiled_variants(self._progress)
        self._progress = no_progress

    def warm_plan(self) -> list[tuple[str, int]]:
        """(phase, frames) of the synthetic streams that run every compiled variant once: a stream
        past the point where the recent ring is full, drained (fill, masked and unmasked T rows,
        unmasked drain), then a short one drained while the ring is still filling (masked drain)."""
        s = self.settings
        cap = s.window - s.warmup
        fill = s.steps - 1 if s.pipelined else 0
        return [("warmup", s.warmup), ("pipeline fill", fill), ("steady state", cap + 1), ("drain", 0),
                ("warmup", s.warmup), ("pipeline fill", fill), ("drain", 0)]

    @torch.no_grad()
    def warm_compiled_variants(self, progress: ProgressFn = no_progress) -> int:
        """Run the warm plan on synthetic frames (compiling each stream variant) and leave the engine
        as it was: same recent frames, same statistics, an empty pipeline. Returns frames pushed."""
        stats, recent = self.stats, list(self.recent_inputs)
        self.stats = EngineStats()  # the warm pass's frames are not the user's
        plan = self.warm_plan()
        total = sum(n for _, n in plan) or 1
        pushed = 0
        rng = np.random.default_rng(0)
        base = rng.integers(0, 256, (self.height, self.width, 3), dtype=np.uint8)
        self.reset()
        try:
            for phase, count in plan:
                if count == 0:
                    progress(f"compiling: {phase}", pushed / total)
                    self.flush()
                    continue
                for _ in range(count):
                    progress(f"compiling: {phase}", pushed / total)
                    self._push(Frame(pixels=np.roll(base, 3 * pushed, axis=1), index=pushed))  # never filtered
                    pushed += 1
            progress("compiling: done", 1.0)
        finally:
            self.reset()
            self.stats = stats
            self.recent_inputs.extend(recent)
        return pushed

    def prepare(self, components: Live2DiffComponents, settings: EngineSettings, name: str = "") -> PreparedStyle:
        """Prepare a style for this engine's device and precision (safe on another thread)."""
        return prepare_style(components, settings, self.device, self.dtype, name)

    def apply_style(self, style: PreparedStyle, recent: list[Frame] | None = None) -> list[Frame]:
        """Switch to a prepared style between frames and re-warm the KV cache from the most recent
        frames: ``recent`` (the caller's camera frames at any size; best, since nothing was lost to an
        earlier resize) or else the frames this engine was fed. Each is fitted to the new style's
        size, so a style at another resolution or aspect switches cleanly. Returns the newest of
        those frames in the new style (so the output never goes blank), or nothing if fewer frames
        than the new warmup have been seen yet."""
        from ..imageops import fit

        started = time.perf_counter()
        frames = list(self.recent_inputs) if recent is None else list(recent)
        self._install(style)
        self.recent_inputs.clear()
        outputs: list[Frame] = []
        for frame in frames[-self.settings.warmup :]:
            outputs = self.push(frame.with_pixels(fit(frame.pixels, self.settings.width, self.settings.height)))
        self.stats.switches += 1
        self.stats.last_switch_ms = (time.perf_counter() - started) * 1000
        return outputs[-1:]

    # -- properties ----------------------------------------------------------------------------------

    @property
    def width(self) -> int:
        return self.settings.width

    @property
    def height(self) -> int:
        return self.settings.height

    @property
    def cache(self) -> StreamKVCache:
        """The KV cache of the installed style (every temporal attention layer, every step)."""
        return self.context.cache

    @property
    def warming_up(self) -> bool:
        return self.cache.cursor(0).warmup_len == 0

    @property
    def overlaps(self) -> bool:
        """Whether a caller should pass ``upcoming`` to ``push`` (the ``overlap`` option: the next
        frame's encode runs on a second CUDA stream while this frame's UNet runs)."""
        return self.accel.overlap

    @property
    def latency_frames(self) -> int:
        """Frames an output lags its input once streaming (T-1 in the stream batch)."""
        return self.settings.steps - 1 if self.settings.pipelined else 0

    # -- model plumbing ------------------------------------------------------------------------------

    def _add_conv_in_residual(self, module, inputs, output):
        residual = self._conv_in_residual[0]
        return output if residual is None else output + residual

    def _to_tensor(self, pixels: np.ndarray) -> torch.Tensor:
        """HxWx3 uint8 -> (1, 3, H, W) in [0, 1] on the engine's device and dtype."""
        t = self._upload(torch.from_numpy(np.ascontiguousarray(pixels)))  # pinned + non-blocking on CUDA
        return t.permute(2, 0, 1).unsqueeze(0).to(self.dtype).div_(255.0)

    @torch.no_grad()
    def _encode(self, image01: torch.Tensor) -> torch.Tensor:
        return self.components.vae.encode(image01 * 2 - 1).latents * self.latent_scale

    @torch.no_grad()
    def decode_latent(self, latent: torch.Tensor) -> np.ndarray:
        """A finished latent (1, 4, h, w) as the HxWx3 uint8 picture ``push`` would return."""
        image = self.components.vae.decode(latent / self.latent_scale).sample  # [-1, 1]
        image = ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return image[0].permute(1, 2, 0).cpu().numpy()

    @torch.no_grad()
    def _depth_residual(self, image01: torch.Tensor) -> torch.Tensor | None:
        if not self.use_depth:
            return None
        c = self.components
        depth = c.depth_estimator.estimate(image01)
        depth_latent = self._encode((depth_to_vae_input(depth).to(self.dtype) + 1) / 2)
        return c.depth_encoder(depth_latent)

    def _noise_for(self, number: int, latent: torch.Tensor) -> torch.Tensor:
        shape = (self.settings.steps, *latent.shape[1:])
        if self.settings.noise == "fixed" and self._fixed_noise is not None:
            return self._fixed_noise
        seed = self.settings.seed if self.settings.noise == "fixed" else _mix_seed(self.settings.seed, number)
        # Drawn on the CPU so a seed gives the same noise on every device.
        generator = torch.Generator().manual_seed(seed)
        noise = self._upload(torch.randn(shape, generator=generator)).to(self.dtype)
        if self.settings.noise == "fixed":
            self._fixed_noise = noise
        return noise

    def _fits(self, frame: Frame) -> bool:
        return frame.pixels.shape[:2] == (self.height, self.width)

    def _check_size(self, frame: Frame) -> None:
        if not self._fits(frame):
            raise FrameSizeError(
                f"frame is {frame.width}x{frame.height} but the engine runs at {self.width}x{self.height}; "
                "fit frames to the profile's resolution first (l2d_obs.imageops.fit)"
            )

    def _encode_frame(self, frame: Frame) -> EncodedFrame:
        image01 = self._to_tensor(frame.pixels)
        return EncodedFrame(latent=self._encode(image01), cond=self._depth_residual(image01))

    def _prefetch(self, frame: Frame | None) -> None:
        """Start encoding ``frame`` (the one expected next) on the side stream; a frame of the wrong
        size is left for its own push to reject."""
        if frame is None or not self._fits(frame):
            return
        with torch.no_grad():
            self._prefetched = self._side.start(frame.pixels, lambda: self._encode_frame(frame))

    def _encoded(self, frame: Frame) -> EncodedFrame:
        """The frame's encode: the prefetched one when it was started for these very pixels."""
        prefetched, self._prefetched = self._prefetched, None
        if prefetched is not None and prefetched.pixels is frame.pixels:
            return self._side.join(prefetched)
        return self._encode_frame(frame)

    def make_job(self, frame: Frame) -> LatentJob:
        """Encode a frame (latent, depth residual, noise) into a job for the denoiser. The noise is
        numbered here, at push time, so a prefetched frame that is never pushed shifts nothing."""
        self._check_size(frame)
        encoded = self._encoded(frame)
        job = LatentJob(
            index=frame.index,
            latent=encoded.latent,
            noise=self._noise_for(self._next_number, encoded.latent),
            cond=encoded.cond,
            payload=frame,
        )
        self._next_number += 1
        return job

    def _finish(self, job: LatentJob) -> Frame:
        frame: Frame = job.payload  # type: ignore[assignment]
        self.stats.frames_out += 1
        return frame.with_pixels(self.decode_latent(job.denoised))

    # -- the public API ------------------------------------------------------------------------------

    def _forget_similar(self) -> None:
        self._last_pushed: np.ndarray | None = None  # pixels of the last frame run through the model
        self._last_output: Frame | None = None
        self._skips = 0

    def _skip_similar(self, frame: Frame) -> list[Frame] | None:
        """The similarity filter: the last output again (with this frame's index and time) when the
        frame nearly equals the last one pushed; None to push it. Nothing of the model is touched."""
        s = self.settings
        if (not s.similarity_filter or self._last_output is None or self._last_pushed is None
                or self._skips >= s.max_skips or frame.pixels.shape != self._last_pushed.shape):
            return None
        if frame_similarity(frame.pixels, self._last_pushed) < s.similarity_threshold:
            return None
        self._skips += 1
        self.stats.frames_in += 1
        self.stats.frames_out += 1
        self.stats.skipped += 1
        return [frame.with_pixels(self._last_output.pixels)]

    def push(self, frame: Frame, upcoming: Frame | None = None) -> list[Frame]:
        """Feed one input frame; returns the frames that finished (in input order).

        ``upcoming``: the frame the caller will push next, when it already has it. Its encode starts
        once this frame's UNet work is enqueued (on a second CUDA stream with ``overlap``), and the
        next push of that same frame object uses it. Outputs are the same with or without it."""
        skipped = self._skip_similar(frame)
        if skipped is not None:
            self._prefetched = None  # nothing runs now to overlap with; the next push encodes itself
            return skipped
        warming = self.warming_up
        outputs = self._push(frame, upcoming)
        if self.settings.similarity_filter:
            self._last_pushed, self._skips = frame.pixels, 0
            if outputs and not warming:
                # Only once the stream batch is full: a skip keeps its frames in flight, so the next
                # push still finishes one and the output rate stays one frame per camera frame.
                self._last_output = outputs[-1]
        return outputs

    def _push(self, frame: Frame, upcoming: Frame | None = None) -> list[Frame]:
        started = time.perf_counter()
        job = self.make_job(frame)  # validates the frame before anything is counted or kept
        self.stats.frames_in += 1
        self.recent_inputs.append(frame)
        if self.warming_up:
            self._warmup_jobs.append(job)
            if len(self._warmup_jobs) < self.settings.warmup:
                self._prefetch(upcoming)
                return []
            jobs, self._warmup_jobs = self._warmup_jobs, []
            warmed = self.denoiser.warmup(jobs)
            self._prefetch(upcoming)
            outputs = [self._finish(j) for j in warmed]
            self.stats.warmup_ms = (time.perf_counter() - started) * 1000
            self.stats.cache_bytes = self.cache.nbytes()
            return outputs
        # The UNet work is enqueued first, then the next frame's encode (beside it on a GPU), and only
        # then does the host wait: for this frame's download.
        finished = self.denoiser.push(job) if self.settings.pipelined else self.denoiser.run_sequential(job)
        self._prefetch(upcoming)
        outputs = [] if finished is None else [self._finish(finished)]
        self._record(started)
        return outputs

    def flush(self) -> list[Frame]:
        """End of stream: finish every pending frame (a short stream's partial warmup included)."""
        outputs: list[Frame] = []
        if self._warmup_jobs:
            jobs, self._warmup_jobs = self._warmup_jobs, []
            outputs += [self._finish(j) for j in self.denoiser.warmup(jobs)]
        outputs += [self._finish(j) for j in self.denoiser.drain()]
        # A flushed stream cannot continue (its warmup may be partial); start over cleanly.
        self.reset()
        return outputs

    def reset(self) -> None:
        """Drop every frame in flight and the KV cache; the next frame starts a new warmup."""
        self.denoiser.reset()
        self._warmup_jobs = []
        self._prefetched = None
        self._next_number = 0
        self.recent_inputs.clear()
        self._forget_similar()

    def _record(self, started: float) -> None:
        ms = (time.perf_counter() - started) * 1000
        st = self.stats
        st.last_ms = ms
        st.steady_pushes += 1
        st.mean_ms += (ms - st.mean_ms) / st.steady_pushes

    def latent_jobs(self, frames: list[Frame]) -> list[LatentJob]:
        """Frames as the denoiser's inputs (latent, noise, depth conditioning), numbered from a fresh
        stream (the engine is reset first: with fresh noise, frame numbers pick the noise)."""
        self.reset()
        jobs = [self.make_job(f) for f in frames]
        self.reset()
        return jobs

    @torch.no_grad()
    def stream_latents(self, frames: list[Frame]) -> list[torch.Tensor]:
        """Run a sequence through the streaming path (warmup, then the stream batch or sequential
        schedule as configured, then drain) and return each frame's final latent, in input order.
        The latent-level form is ``denoiser.stream(latent_jobs(frames))``."""
        jobs = self.denoiser.stream(self.latent_jobs(frames), pipelined=self.settings.pipelined)
        return [j.denoised for j in jobs]

    def close(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self.context.release()
