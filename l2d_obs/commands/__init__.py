"""The `l2d-obs` commands, one module per area. Each module holds its commands in its own Typer
``app``; ``cli.py`` adds them to the root explicitly (nothing registers by being imported), so no
command module imports ``cli``."""

from __future__ import annotations

import typer


def command_set() -> typer.Typer:
    """An unnamed Typer whose commands the root adopts as its own (``root.add_typer(app)`` without a name)."""
    # Plain click help, as on the root: Rich markup would eat bracketed words ("[switching]") in help texts.
    return typer.Typer(rich_markup_mode=None)
