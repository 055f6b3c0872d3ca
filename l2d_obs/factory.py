"""Profile -> components -> engine: the one module that knows both ``engine/`` and ``weights/``.

The engine takes components and knows no file format; the loaders in ``weights/`` build components
from files and know no streaming. Everything that turns a profile into a running engine (``start``,
``render``, style switching, ``eval``) comes through here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .progress import ProgressFn, no_progress

if TYPE_CHECKING:  # torch is imported only when an engine is really built
    import torch

    from .engine.accel import Accelerations
    from .engine.components import Live2DiffComponents
    from .engine.stream import StreamEngine
    from .profiles import Profile


def build_components(profile: "Profile", device: "torch.device | str" = "cpu", dtype: "torch.dtype | None" = None,
                     progress: ProgressFn = no_progress) -> "Live2DiffComponents":
    """Components for a profile: random tiny ones, or real weights through the loaders (loaded
    straight to the engine's device and precision; fp32 when ``dtype`` is None)."""
    if profile.model.kind == "tiny":
        from .engine.tiny import build_tiny_components

        return build_tiny_components(profile.model.weights_seed, depth=profile.depth.enabled)
    import torch

    from .weights.assemble import build_sd15_components

    return build_sd15_components(profile, device=device, dtype=dtype or torch.float32, progress=progress)


def build_engine(profile: "Profile", device: str | None = None, dtype: str | None = None,
                 progress: ProgressFn = no_progress, *, compile: bool | None = None, cuda_graphs: bool | None = None,
                 channels_last: bool | None = None, backend: str | None = None, overlap: bool | None = None,
                 accel: "Accelerations | None" = None, **overrides) -> "StreamEngine":
    """A ready StreamEngine for ``profile`` (overrides: any EngineSettings field, e.g. pipelined=False).

    Device and precision: command line, then the profile's [engine] table, then the best the machine has.
    Speed options: ``accel`` as given, or resolved from ``compile``/``cuda_graphs``/``channels_last``/
    ``overlap`` (None: not given) over the profile's [engine] table over the device's defaults (on with CUDA)."""
    from .engine.factory import (
        engine_from_components, resolve_accelerations, resolve_device_and_dtype, warn_if_slow_precision,
    )

    dev, dt = resolve_device_and_dtype(profile, device, dtype)
    warn_if_slow_precision(dev, dt)
    if accel is None:
        accel = resolve_accelerations(profile, dev, compile, cuda_graphs, channels_last, backend, overlap)
    components = build_components(profile, dev, dt, progress=progress)
    return engine_from_components(profile, components, dev, dt, accel, progress, **overrides)
