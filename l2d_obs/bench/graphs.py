"""How the compiled stream call compiles: graphs per variant, graph breaks, recompiles after warmup.

Measured with dynamo and a backend that only counts the graphs it is handed and runs them eagerly,
so it is cheap on a CPU and says the same about the graph structure as inductor would.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch
from torch import _dynamo as dynamo

from ..engine.accel import Accelerations, stream_variants
from ..engine.stream import StreamEngine
from ..frames import Frame


class GraphCounter:
    """A torch.compile backend: counts the FX graphs dynamo produces, runs each eagerly."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, gm: torch.fx.GraphModule, example_inputs):
        self.graphs += 1
        return gm.forward


def graph_breaks() -> int:
    from torch._dynamo.utils import counters

    return int(sum(counters["graph_break"].values()))


@dataclass
class CompileFigures:
    variants: int  # declared stream variants (rows x masked)
    graphs_at_warmup: int  # graphs compiled while the engine warmed its variants
    graph_breaks: int  # over warmup and the measured frames
    recompiles_after_warmup: int  # graphs compiled while streaming the measured frames
    frames: int  # frames streamed after warmup

    @property
    def graphs_per_variant(self) -> float:
        return self.graphs_at_warmup / self.variants if self.variants else float("nan")

    def to_dict(self) -> dict:
        return {
            "variants": self.variants,
            "graphs_at_warmup": self.graphs_at_warmup,
            "graphs_per_stream_call": round(self.graphs_per_variant, 3),
            "graph_breaks": self.graph_breaks,
            "recompiles_after_warmup": self.recompiles_after_warmup,
            "frames": self.frames,
            "backend": "dynamo, counting backend (graphs run eagerly)",
        }


def measure_compiled_stream(build: Callable[[Accelerations], StreamEngine], frames: list[Frame],
                            ) -> tuple[CompileFigures, StreamEngine, list[Frame]]:
    """Build an engine with compile on (counting backend), then stream ``frames`` and flush.
    Returns the figures, the engine and its outputs (for comparing with an eager engine)."""
    from torch._dynamo.utils import counters

    dynamo.reset()
    counters.clear()
    counter = GraphCounter()
    engine = build(Accelerations(compile=True, backend=counter))  # type: ignore[arg-type]
    at_warmup = counter.graphs
    s = engine.settings
    variants = len(stream_variants(s.steps, s.window, s.warmup, s.pipelined))
    with torch.no_grad():
        outputs = [o for f in frames for o in engine.push(f)] + engine.flush()
    figures = CompileFigures(variants, at_warmup, graph_breaks(), counter.graphs - at_warmup, len(frames))
    return figures, engine, outputs


def run_graphs_part(cfg, progress: bool = False) -> dict:
    """``bench --parts graphs``: for this configuration's engine, how the compiled steady-state step
    compiles (dynamo, counting backend, on the CPU) and its host<->device transfers per push (on the
    meta device, audited). Fresh engines: the timed one is left as it is."""
    from .models import build_components
    from .setup import bench_settings, pattern_frames
    from .transfers import measure_steady_state_transfers

    settings = bench_settings(cfg)
    frames = pattern_frames(cfg.resolution, cfg.resolution, max(40, cfg.window + cfg.steps + 4))

    def build(accel: Accelerations) -> StreamEngine:
        components = build_components(cfg.size, depth=cfg.depth, weights_seed=cfg.seed)
        return StreamEngine(components, settings, device="cpu", dtype=torch.float32, accel=accel)

    figures, engine, _ = measure_compiled_stream(build, frames)
    engine.close()
    dynamo.reset()
    # Built on the meta device, no weights are materialised: a full-size model costs nothing here.
    # (The tiny builder calibrates its VAE on data: it is built on the CPU and moved.)
    with contextlib.nullcontext() if cfg.size == "tiny" else torch.device("meta"):
        components = build_components(cfg.size, depth=cfg.depth, weights_seed=cfg.seed)
    meta_engine = StreamEngine(components, settings, device="meta", dtype=torch.float32)
    transfers = measure_steady_state_transfers(meta_engine, frames)
    return {"compiled_stream_step": figures.to_dict(), "transfers": transfers}
