"""The engine's speed options (channels-last, ``torch.compile``, CUDA graphs, a second stream for the
next frame's encode), applied in one place.

``build_engine`` resolves them (command line over the profile's ``[engine]`` table over the device's
defaults: on with CUDA, off elsewhere) and the engine applies them whenever a style is installed, so
``start`` and ``bench`` run exactly the same code.

What is compiled is the UNet of the *stream batch* (STREAM mode): the call every steady-state frame
makes. Warmup, reference and clip calls run eagerly (once per stream, or in tests). The stream call
has a bounded set of legitimate variants, each a static-shaped graph: the number of rows ``R`` in
flight (1..T while the pipeline fills or drains, T in the steady state) and whether the recent ring is
still filling (a key mask is needed) or full (no mask). ``stream_variants`` names them; the engine
warms all of them when it installs a style, so nothing compiles mid-stream.

CUDA graphs (``cuda_graphs``: inductor's "reduce-overhead" mode) can capture the stream call because
what it mutates is static: the KV cache buffers are allocated by the eager warmup before any capture,
written in place and marked static inputs (kvcache.py), and the memoised row layouts are too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import torch

from ..errors import ConfigError

log = logging.getLogger(__name__)

FLAGS = ("compile", "cuda_graphs", "channels_last", "overlap")


@dataclass(frozen=True)
class Accelerations:
    """Which speed options the engine uses. ``backend`` is torch.compile's (tests use "eager")."""

    compile: bool = False
    cuda_graphs: bool = False  # torch.compile mode "reduce-overhead" (needs compile and CUDA)
    channels_last: bool = False
    overlap: bool = False  # the next frame's encode + depth on a second CUDA stream (engine/prefetch.py)
    backend: str = "inductor"

    @classmethod
    def defaults_for(cls, device: torch.device | str) -> "Accelerations":
        on = torch.device(device).type == "cuda"
        return cls(compile=on, cuda_graphs=on, channels_last=on, overlap=on)

    @classmethod
    def resolve(cls, device: torch.device | str, spec=None, **overrides: bool | str | None) -> "Accelerations":
        """Device defaults, then the profile's ``[engine]`` values (``spec``: an EngineSpec, None
        where unset), then explicit overrides (None: not given). Contradictions are errors."""
        device = torch.device(device)
        accel = cls.defaults_for(device)
        from_spec = {name: getattr(spec, name, None) for name in FLAGS + ("backend",)} if spec is not None else {}
        for layer in (from_spec, overrides):
            values = {name: value for name, value in layer.items() if value is not None}
            if values.get("compile") is False and "cuda_graphs" not in values:
                values["cuda_graphs"] = False  # compile off switches its CUDA-graphs mode off too
            accel = replace(accel, **{k: v for k, v in values.items() if k in FLAGS + ("backend",)})
        unknown = set(overrides) - set(FLAGS) - {"backend"}
        if unknown:
            raise TypeError(f"unknown acceleration options {sorted(unknown)}")
        if accel.cuda_graphs and device.type != "cuda":
            raise ConfigError(f"cuda_graphs needs a CUDA device, the engine runs on {device}; turn cuda_graphs off")
        if accel.overlap and device.type != "cuda":
            raise ConfigError(f"overlap runs the next frame's encode on a second CUDA stream; the engine runs on {device}: "
                              "turn overlap off")
        if accel.cuda_graphs and not accel.compile:
            raise ConfigError("cuda_graphs is torch.compile's reduce-overhead mode: it needs compile on")
        return accel

    @property
    def mode(self) -> str:
        return "reduce-overhead" if self.cuda_graphs else "default"

    def describe(self) -> str:
        on = [name for name in FLAGS if getattr(self, name)]
        return ", ".join(on) + (f" (backend {self.backend})" if self.compile else "") if on else "eager"


def stream_variants(num_steps: int, window: int, warmup: int, pipelined: bool = True) -> list[tuple[int, bool]]:
    """The (rows, masked) variants of the compiled stream call, in the order a stream meets them.

    Pipelined: the pipeline fills with 1..T rows while the recent ring fills (masked), then T rows
    (masked until the ring is full, unmasked after), and drains with T-1..1 rows at the end of a
    stream (unmasked once the ring is full; masked for a stream that ends early). Sequential: one row.
    """
    rows = range(1, num_steps + 1) if pipelined else [1]
    return [(r, masked) for masked in (True, False) for r in rows]


def apply_channels_last(components) -> None:
    for module in (components.unet, components.vae):
        module.to(memory_format=torch.channels_last)


def compile_stream_unet(unet: torch.nn.Module, accel: Accelerations, variants: int) -> torch.nn.Module:
    """The stream-batch UNet under torch.compile, static shapes, one graph per declared variant."""
    import torch._dynamo.config as dynamo_config

    if dynamo_config.recompile_limit < variants:
        # Every declared variant must get its own graph; past the limit dynamo falls back to eager.
        log.info("raising torch._dynamo recompile_limit from %d to %d (declared stream variants)",
                 dynamo_config.recompile_limit, variants)
        dynamo_config.recompile_limit = variants
    return torch.compile(unet, backend=accel.backend, mode=None if accel.backend != "inductor" else accel.mode,
                         dynamic=False, fullgraph=False)
