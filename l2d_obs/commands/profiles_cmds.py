"""`l2d-obs profiles list | show | check` — style profiles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import command_set
from ..errors import L2DError, ProfileError
from ..profiles import Profile, available_profiles, load_profile, load_profile_file, profile_search_path

app = command_set()  # what cli.py adds to the root
profiles_app = typer.Typer(help="List, show and check style profiles.", no_args_is_help=True)
app.add_typer(profiles_app, name="profiles")


@profiles_app.command("list")
def list_profiles() -> None:
    """Every profile by name (user profiles override shipped ones with the same name)."""
    found = available_profiles()
    if not found:
        typer.echo("no profiles found in: " + ", ".join(map(str, profile_search_path())))
        return
    for name, path in found.items():
        try:
            profile = load_profile_file(path)
            typer.echo(f"{name:16} {profile.display_name:40} {path}")
        except L2DError as exc:
            typer.echo(f"{name:16} {'INVALID':40} {exc}")


def _describe(p: Profile) -> list[str]:
    m = p.model
    lines = [
        f"name:           {p.name}",
        f"display name:   {p.display_name}",
        f"file:           {p.source_path}",
        f"prompt:         {p.prompt}",
        f"trigger words:  {', '.join(p.trigger_words) or '-'}",
        f"model:          {m.kind}" + (f" (weights seed {m.weights_seed})" if m.kind == "tiny" else ""),
    ]
    if m.kind == "sd15":
        lines += [
            f"  base:         {m.base}",
            f"  motion:       {m.motion}",
            f"  lcm lora:     {m.lcm_lora} (scale {m.lcm_lora_scale:g})",
            f"  vae:          {m.vae}",
            f"  clip skip:    {m.clip_skip}",
        ]
        lines += [f"  lora:         {lora.source} (scale {lora.scale:g}) {lora.name}" for lora in m.loras]
    depth = "off" if not p.depth.enabled else f"{p.depth.estimator}" + (f" from {p.depth.source}" if p.depth.source else "")
    lines += [
        f"denoising:      t_index_list {list(p.t_index_list)} of {p.num_inference_steps} steps (strength {p.strength:.2f})",
        f"seed / noise:   {p.seed} / {p.noise}",
        f"resolution:     {p.width}x{p.height}",
        f"window:         L={p.window}, Lw={p.warmup}",
        f"depth:          {depth}",
        f"engine:         device {p.engine.device or 'auto'}, dtype {p.engine.dtype or 'auto'}, "
        f"{'pipelined' if p.engine.pipelined else 'sequential'}",
    ]
    return lines


@profiles_app.command("show")
def show(name: Annotated[str, typer.Argument(help="Profile name or .toml path.")]) -> None:
    """Print a profile after validation, with defaults filled in."""
    typer.echo("\n".join(_describe(load_profile(name))))


@profiles_app.command("check")
def check(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Profile files (default: every known profile).")] = None,
) -> None:
    """Validate profile files; exits non-zero if any is invalid."""
    from ..weights.assemble import check_window_fits

    files = list(paths) if paths else list(available_profiles().values())
    bad = 0
    for file in files:
        try:
            profile = load_profile_file(file)
            check_window_fits(profile)  # against the motion modules, when their file is here
            typer.echo(f"ok: {file}")
        except L2DError as exc:
            bad += 1
            typer.echo(f"invalid: {exc}", err=True)
    if bad:
        raise ProfileError(f"{bad} of {len(files)} profile file(s) invalid")
