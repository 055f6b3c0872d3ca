"""`l2d-obs bench` — measure the engine, the daemon and memory over a long run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import command_set
from ..dtypes import DTYPE_HELP, parse_dtype
from ..errors import ConfigError
from ..threads import default_threads

app = command_set()  # what cli.py adds to the root


@app.command()
def bench(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object with every figure.")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="Few frames and repetitions, a short soak (a smoke run).")] = False,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu or cuda (default: best available).")] = None,
    dtype: Annotated[Optional[str], typer.Option("--dtype", help=f"{DTYPE_HELP}; default: fp16 on GPU, fp32 on CPU.")] = None,
    size: Annotated[str, typer.Option("--size", help="tiny, small, or full (SD1.5 + motion modules + DPT-hybrid, random weights).")] = "tiny",
    resolution: Annotated[Optional[int], typer.Option("--resolution", help="Square frame size in pixels (default: 64 tiny and small, 512 full).")] = None,
    steps: Annotated[int, typer.Option("--steps", help="Denoising steps T in the stream batch.")] = 2,
    window: Annotated[int, typer.Option("--window", help="Attention window L.")] = 16,
    warmup: Annotated[int, typer.Option("--warmup", help="Warmup frames Lw.")] = 8,
    depth: Annotated[bool, typer.Option("--depth/--no-depth", help="Depth prior (estimator + E_cond).")] = True,
    frames: Annotated[Optional[int], typer.Option("--frames", help="Timed frames per variant and repetition (default 8, quick 3).")] = None,
    repeats: Annotated[Optional[int], typer.Option("--repeats", help="Repetitions; figures are medians (default 3, quick 2).")] = None,
    daemon_frames: Annotated[Optional[int], typer.Option("--daemon-frames", help="Frames measured through the daemon (default 120, quick 20).")] = None,
    source_fps: Annotated[float, typer.Option("--source-fps", help="Pattern source rate in the daemon run (0: max(30, 1.5x the engine-only rate)).")] = 0.0,
    soak_frames: Annotated[Optional[int], typer.Option("--soak-frames", help="Frames in the soak (default 5000, quick 200).")] = None,
    parts: Annotated[str, typer.Option("--parts", help="Comma-separated: engine, daemon, soak, graphs (how the compiled step compiles; host<->device transfers per push).")] = "engine,daemon,soak,graphs",
    threads: Annotated[int, typer.Option("--threads", help="torch CPU threads (0: 1 on a machine with up to 2 cores, else all cores but one).")] = 0,
    sdpa: Annotated[bool, typer.Option("--sdpa/--no-sdpa", help="SDPA attention in the spatial attentions.")] = True,
    channels_last: Annotated[Optional[bool], typer.Option("--channels-last/--no-channels-last", help="channels-last memory format (default: on with CUDA).")] = None,
    compile_unet: Annotated[Optional[bool], typer.Option("--compile/--no-compile", help="torch.compile the UNets (default: on with CUDA).")] = None,
    cuda_graphs: Annotated[Optional[bool], typer.Option("--cuda-graphs/--no-cuda-graphs", help="CUDA graphs via torch.compile's reduce-overhead mode (default: on with CUDA).")] = None,
    overlap: Annotated[Optional[bool], typer.Option("--overlap/--no-overlap", help="Encode the next frame on a second CUDA stream while the UNet runs (default: on with CUDA).")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", help="Also write the JSON report to this file.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars with ETA on stderr.")] = True,
) -> None:
    """Benchmark the streaming engine: KV cache vs recompute, pipelining, daemon overhead, memory."""
    dtype = parse_dtype(dtype)
    from ..bench.config import Accelerations, BenchConfig
    from ..bench.runner import run_bench
    from ..bench.table import format_report
    from ..engine.factory import pick_device

    dev = pick_device(device)
    auto = Accelerations.defaults_for(dev.type)
    accel = Accelerations(
        sdpa=sdpa,
        channels_last=auto.channels_last if channels_last is None else channels_last,
        compile=auto.compile if compile_unet is None else compile_unet,
        cuda_graphs=auto.cuda_graphs if cuda_graphs is None else cuda_graphs,
        overlap=auto.overlap if overlap is None else overlap,
    )
    default_resolution = {"tiny": 64, "small": 64, "full": 512}
    try:
        cfg = BenchConfig(
            size=size,
            resolution=resolution or default_resolution.get(size, 64),
            steps=steps,
            window=window,
            warmup=warmup,
            device=str(dev),
            dtype=dtype or ("fp16" if dev.type == "cuda" else "fp32"),
            depth=depth,
            quick=quick,
            frames=frames or (3 if quick else 8),
            repeats=repeats or (2 if quick else 3),
            daemon_frames=daemon_frames or (20 if quick else 120),
            source_fps=source_fps,
            soak_frames=soak_frames if soak_frames is not None else (200 if quick else 5000),
            parts=tuple(p.strip() for p in parts.split(",") if p.strip()),
            accel=accel,
            threads=threads or default_threads(),
            warm_pass=not quick,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if progress:
        typer.echo(f"bench: building the {size} engine ({cfg.resolution}x{cfg.resolution}, {cfg.device}, {cfg.dtype})", err=True)
    report = run_bench(cfg, progress=progress).to_dict()
    text = json.dumps(report, indent=2)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n", encoding="utf-8")
    typer.echo(text if as_json else format_report(report))
