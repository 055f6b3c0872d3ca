"""Build an engine for a profile: pick device and precision, get the components, patch, go."""

from __future__ import annotations

import logging

import torch

from ..dtypes import parse_dtype
from ..errors import ConfigError
from ..progress import ProgressFn, no_progress
from .accel import Accelerations
from .components import Live2DiffComponents
from .stream import EngineSettings, StreamEngine

log = logging.getLogger(__name__)

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def pick_device(requested: str | None = None) -> torch.device:
    """CUDA when present, then Apple MPS, else CPU; an explicit request must be available."""
    if requested:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda requested but no CUDA GPU is visible to torch (check drivers / CUDA build of torch)")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ConfigError("--device mps requested but Apple MPS is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device, requested: str | None = None) -> torch.dtype:
    """fp16 on GPUs, fp32 on the CPU (CPU half precision is slow and inexact)."""
    if requested:
        return _DTYPES[parse_dtype(requested)]  # one spelling everywhere (a one-line error otherwise)
    return torch.float16 if device.type in ("cuda", "mps") else torch.float32


def build_components(profile, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                     progress: ProgressFn = no_progress) -> Live2DiffComponents:
    """Components for a profile: random tiny ones, or real weights through the loaders (loaded
    straight to the engine's device and precision)."""
    if profile.model.kind == "tiny":
        from .tiny import build_tiny_components

        return build_tiny_components(profile.model.weights_seed, depth=profile.depth.enabled)
    from ..weights import build_sd15_components

    return build_sd15_components(profile, device=device, dtype=dtype, progress=progress)


def resolve_device_and_dtype(profile, device: str | None = None, dtype: str | None = None) -> tuple[torch.device, torch.dtype]:
    """Command line first, then the profile's [engine] table, then the best the machine has."""
    dev = pick_device(device or profile.engine.device)
    return dev, pick_dtype(dev, dtype or profile.engine.dtype)


def resolve_accelerations(profile, device: torch.device, compile: bool | None = None, cuda_graphs: bool | None = None,
                          channels_last: bool | None = None, backend: str | None = None) -> Accelerations:
    """Command line (None: not given) over the profile's [engine] table over the device's defaults."""
    return Accelerations.resolve(device, profile.engine, compile=compile, cuda_graphs=cuda_graphs,
                                 channels_last=channels_last, backend=backend)


def build_engine(profile, device: str | None = None, dtype: str | None = None, progress: ProgressFn = no_progress, *,
                 compile: bool | None = None, cuda_graphs: bool | None = None, channels_last: bool | None = None,
                 backend: str | None = None, accel: Accelerations | None = None, **overrides) -> StreamEngine:
    """A ready StreamEngine for ``profile`` (overrides: any EngineSettings field, e.g. pipelined=False).

    Speed options: ``accel`` as given, or resolved from ``compile``/``cuda_graphs``/``channels_last``
    (None: not given) over the profile's [engine] table over the device's defaults (on with CUDA).
    With compile on, every compiled variant is warmed here ("compiling: ..." progress)."""
    dev, dt = resolve_device_and_dtype(profile, device, dtype)
    if dev.type == "cpu" and dt != torch.float32:
        # Measured on a 2-core CPU with toon: 6.6 s a frame in fp16 against 0.4 s in fp32.
        log.warning("%s on a CPU is many times slower than fp32 (CPUs have no fast half-precision path); "
                    "use --dtype fp32", str(dt).removeprefix("torch."))
    if accel is None:
        accel = resolve_accelerations(profile, dev, compile, cuda_graphs, channels_last, backend)
    components = build_components(profile, dev, dt, progress=progress)
    progress("preparing the engine", 0.95)
    settings = EngineSettings.from_profile(profile, **overrides)
    log.info("engine: profile %s on %s (%s), %dx%d, T=%d, L=%d, Lw=%d, %s", profile.name, dev, str(dt).removeprefix("torch."),
             settings.width, settings.height, settings.steps, settings.window, settings.warmup, accel.describe())
    return StreamEngine(components, settings, device=dev, dtype=dt, accel=accel, progress=progress)
