"""`l2d-obs render` (and the engine's other offline commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import command_set
from ..dtypes import DTYPE_HELP, parse_dtype

app = command_set()  # what cli.py adds to the root


@app.command()
def render(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="Video file or folder of numbered PNG frames.")],
    output_path: Annotated[Path, typer.Argument(metavar="OUTPUT", help="Video file (.avi/.mkv/.mp4/.mov) or a new folder for PNG frames.")],
    profile: Annotated[str, typer.Option("--profile", "-p", help="Style profile name or .toml path.")] = "toon",
    seed: Annotated[Optional[int], typer.Option("--seed", help="Noise seed (default: the profile's).")] = None,
    fps: Annotated[float, typer.Option("--fps", help="Frame rate of a PNG-folder INPUT (videos carry their own).")] = 30.0,
    device: Annotated[Optional[str], typer.Option("--device", help="cuda, mps or cpu (default: best available).")] = None,
    dtype: Annotated[Optional[str], typer.Option("--dtype", help=f"{DTYPE_HELP}; default: fp16 on GPU, fp32 on CPU.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="Torch CPU threads (default: 1 on a machine with up to 2 cores, else all cores but one).")] = None,
) -> None:
    """Translate a video offline with a profile; output keeps the input's frame count, size and rate."""
    dtype = parse_dtype(dtype)
    from tqdm import tqdm

    from ..factory import build_engine
    from ..profiles import load_profile
    from ..render import render as render_clip

    prof = load_profile(profile)
    from ..threads import apply_threads

    apply_threads(threads)
    overrides = {} if seed is None else {"seed": seed}
    bars: list = []  # created at the first finished frame, so errors are not preceded by an empty bar

    def on_progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="frame", desc=f"render {prof.name}", disable=not progress))
        bars[0].update(done - bars[0].n)

    try:
        result = render_clip(input_path, output_path, lambda: build_engine(prof, device=device, dtype=dtype, **overrides),
                             input_fps=fps, progress=on_progress)
    finally:
        for bar in bars:
            bar.close()
    typer.echo(f"wrote {result.frames} frames ({result.width}x{result.height} @ {result.fps:g} fps) to {result.output}")
