"""The `l2d-obs` command line (Typer).

Thin commands: each parses its options, calls into the package, and lets L2DError propagate; `main`
turns any L2DError into one line on stderr and the error's exit code. Logging is set up here, once.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from .errors import L2DError

app = typer.Typer(
    name="l2d-obs",
    help="Live2Diff for OBS: put a live, temporally consistent AI style on your camera.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

log = logging.getLogger("l2d_obs")


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # Third-party libraries are chatty at INFO; keep them at WARNING unless -vv.
    for noisy in ("diffusers", "transformers", "urllib3", "httpx", "obswebsocket", "websocket", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbose < 2 else logging.DEBUG)


@app.callback()
def _root(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (-v info, -vv debug).")] = 0,
) -> None:
    setup_logging(verbose)


def _register_commands() -> None:
    # Each area keeps its commands in its own module; importing registers them on `app`.
    from .commands import engine_cmds  # noqa: F401
    from .commands import daemon_cmds  # noqa: F401
    from .commands import models_cmds  # noqa: F401
    from .commands import profiles_cmds  # noqa: F401
    from .commands import bench_cmds  # noqa: F401
    from .commands import train_cmds  # noqa: F401
    from .commands import eval_cmds  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    _register_commands()
    try:
        # With standalone_mode=False click hands back the code of a typer.Exit instead of raising it.
        result = app(args=argv, standalone_mode=False)
    except L2DError as exc:
        print(f"l2d-obs: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("l2d-obs: interrupted", file=sys.stderr)
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("l2d-obs: aborted", file=sys.stderr)
        return 1
    except Exception as exc:  # click usage errors come through here with standalone_mode=False
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return result if isinstance(result, int) else 0


