"""`l2d-obs profiles list | show | keys | check` — style profiles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import command_set
from ..errors import L2DError, ProfileError
from ..profiles import (
    TRIGGER_PLACEHOLDER, Profile, available_profiles, load_profile, load_profile_file, profile_reference,
    profile_search_path, profile_toml,
)

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


def _describe(p: Profile) -> str:
    """What was derived from the file, as comments, then the profile as TOML with every default
    filled in (read off the schema, so a new field shows up here by itself)."""
    notes = [
        f"# {p.name}: {p.display_name}",
        f"# file: {p.source_path}",
        f"# prompt after {TRIGGER_PLACEHOLDER}: {p.prompt}",
        f"# strength {p.strength:.2f} (implied by t_index_list[0] = {p.t_index_list[0]} on the "
        f"{p.num_inference_steps}-step grid), {p.steps} denoising steps per frame",
    ]
    return "\n".join(notes) + "\n" + profile_toml(p)


@profiles_app.command("show")
def show(name: Annotated[str, typer.Argument(help="Profile name or .toml path.")]) -> None:
    """Print a profile after validation, with defaults filled in (as a TOML file that loads back)."""
    typer.echo(_describe(load_profile(name)), nl=False)


@profiles_app.command("keys")
def keys() -> None:
    """Every key a profile file may have: type, default, allowed values and meaning."""
    typer.echo(profile_reference(), nl=False)


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
