"""`l2d-obs train`: train a Live2Diff model (or a style LoRA on one) from a run config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import command_set

app = command_set()  # what cli.py adds to the root


@app.command()
def train(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="Training config (.toml); shipped ones are in l2d_obs/data/train/.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Run folder: checkpoints, loss log and curve, model/ and a profile.")],
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --output from its latest checkpoint.")] = False,
    stop_after: Annotated[Optional[int], typer.Option("--stop-after", min=1, help="Stop (with a checkpoint) after this many more steps.")] = None,
    threads: Annotated[int, typer.Option("--threads", min=1, help="Torch CPU threads (1 is fastest on a shared 2-core machine).")] = 1,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar with loss and ETA.")] = True,
) -> None:
    """Train the stages of CONFIG in order (paper Sec. 3.2/3.5), then write the model and its profile."""
    import torch

    from ..training.config import load_train_config
    from ..training.trainer import Trainer

    config = load_train_config(config_path)
    torch.set_num_threads(threads)
    trainer = Trainer(config, output, progress=progress)
    try:
        result = trainer.run(resume=resume, stop_after=stop_after)
    except KeyboardInterrupt as exc:
        typer.echo(f"l2d-obs: interrupted; {exc}; continue with: l2d-obs train {config_path} --output {output} --resume", err=True)
        raise typer.Exit(130) from None
    if result.finished:
        typer.echo(f"trained {result.steps_done} steps in {result.seconds / 60:.1f} min; profile: {result.profile_path}")
        typer.echo(f"try it: l2d-obs render INPUT OUTPUT --profile {result.profile_path}")
    else:
        typer.echo(f"stopped at step {result.steps_done} of {config.total_steps}; continue with --resume")
