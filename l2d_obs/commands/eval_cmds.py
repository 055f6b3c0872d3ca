"""`l2d-obs eval` — the profile's variants on the same clips: flicker, depth, structure, CLIP, speed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import command_set
from ..dtypes import DTYPE_HELP, parse_dtype

app = command_set()  # what cli.py adds to the root


@app.command("eval")
def eval_(
    inputs: Annotated[list[Path], typer.Argument(metavar="INPUT", help="Clips: video files or folders of numbered PNG frames, all with the same frame count.")],
    profile: Annotated[str, typer.Option("--profile", "-p", help="Style profile name or .toml path.")] = "toon",
    variant: Annotated[Optional[list[str]], typer.Option("--variant", "-V", help="Variant to run (repeatable): live2diff, per-frame, no-warmup, window-8, window-16, window-24, bidirectional. Default: every one the weights can take.")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write every figure (per clip, per variant, per frame) as JSON here.")] = None,
    plot_path: Annotated[Optional[Path], typer.Option("--plot", help="Write a PNG of per-frame warp error per variant here.")] = None,
    frames: Annotated[Optional[int], typer.Option("--frames", help="Use the first N frames of each clip.")] = None,
    clip: Annotated[Optional[Path], typer.Option("--clip", envvar="L2D_CLIP_MODEL", show_envvar=True, help="Local transformers CLIPModel folder for CLIP scores (e.g. from `hf download openai/clip-vit-base-patch32`).")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="Torch CPU threads (default: 1 on a machine with up to 2 cores, else all cores but one).")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="cuda, mps or cpu (default: best available).")] = None,
    dtype: Annotated[Optional[str], typer.Option("--dtype", help=f"{DTYPE_HELP}; default: fp16 on GPU, fp32 on CPU.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines on stderr.")] = False,
) -> None:
    """Score the profile's variants (live2diff, per-frame, no-warmup, window-N, bidirectional) on the same clips."""
    dtype = parse_dtype(dtype)
    from ..evaluation.evaluate import check_output_path, run_evaluation, write_json
    from ..evaluation.variants import check_variant

    for v in variant or ():
        check_variant(v)
    check_output_path(json_path, "--json")
    check_output_path(plot_path, "--plot")
    from ..threads import apply_threads

    apply_threads(threads)

    def progress(message: str) -> None:
        if not quiet:
            typer.echo(f"eval {message}", err=True)

    result = run_evaluation(inputs, profile, variants=variant, frames=frames, clip_path=clip, device=device,
                            dtype=dtype, progress=progress)
    if result.clip_note:
        typer.echo(result.clip_note, err=True)
    typer.echo(result.table())
    if json_path is not None:
        write_json(result, json_path)
        typer.echo(f"wrote {json_path}")
    if plot_path is not None:
        result.plot(plot_path)
        typer.echo(f"wrote {plot_path}")
