"""`l2d-obs plugin path` — where the OBS script of this installation is, to add in Tools > Scripts."""

from __future__ import annotations

import typer

from . import command_set
from ..errors import L2DError

app = command_set()  # what cli.py adds to the root
plugin_app = typer.Typer(help="The OBS script (hotkeys and style switching inside OBS).", no_args_is_help=True)
app.add_typer(plugin_app, name="plugin")


@plugin_app.command("path")
def path() -> None:
    """Print the path of the installed OBS script (OBS: Tools > Scripts > + > pick this file)."""
    from ..plugin_files import plugin_script

    script = plugin_script()
    if not script.is_file():
        raise L2DError(f"the OBS script is missing from this installation ({script}); reinstall l2d-obs")
    typer.echo(str(script))
