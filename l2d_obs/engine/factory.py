"""An engine from a profile's settings and components already built: device and precision picked,
speed options resolved, the StreamEngine made. Building the components (random tiny ones or real
weights) is ``l2d_obs.factory``'s job, above both engine/ and weights/: the engine imports no loader."""

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


def resolve_device_and_dtype(profile, device: str | None = None, dtype: str | None = None) -> tuple[torch.device, torch.dtype]:
    """Command line first, then the profile's [engine] table, then the best the machine has."""
    dev = pick_device(device or profile.engine.device)
    return dev, pick_dtype(dev, dtype or profile.engine.dtype)


def resolve_accelerations(profile, device: torch.device, compile: bool | None = None, cuda_graphs: bool | None = None,
                          channels_last: bool | None = None, backend: str | None = None,
                          overlap: bool | None = None) -> Accelerations:
    """Command line (None: not given) over the profile's [engine] table over the device's defaults."""
    return Accelerations.resolve(device, profile.engine, compile=compile, cuda_graphs=cuda_graphs,
                                 channels_last=channels_last, backend=backend, overlap=overlap)


def engine_from_components(profile, components: Live2DiffComponents, device: torch.device, dtype: torch.dtype,
                           accel: Accelerations, progress: ProgressFn = no_progress, **overrides) -> StreamEngine:
    """A ready StreamEngine for ``profile`` on ``components`` (overrides: any EngineSettings field, e.g.
    pipelined=False). With compile on, every compiled variant is warmed here ("compiling: ..." progress)."""
    progress("preparing the engine", 0.95)
    settings = EngineSettings.from_profile(profile, **overrides)
    log.info("engine: profile %s on %s (%s), %dx%d, T=%d, L=%d, Lw=%d, %s", profile.name, device, str(dtype).removeprefix("torch."),
             settings.width, settings.height, settings.steps, settings.window, settings.warmup, accel.describe())
    return StreamEngine(components, settings, device=device, dtype=dtype, accel=accel, progress=progress)


def warn_if_slow_precision(device: torch.device, dtype: torch.dtype) -> None:
    if device.type == "cpu" and dtype != torch.float32:
        # Measured on a 2-core CPU with toon: 6.6 s a frame in fp16 against 0.4 s in fp32.
        log.warning("%s on a CPU is many times slower than fp32 (CPUs have no fast half-precision path); "
                    "use --dtype fp32", str(dtype).removeprefix("torch."))
