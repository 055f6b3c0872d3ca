"""The `l2d-obs` command line (Typer).

Thin commands: each parses its options, calls into the package, and lets L2DError propagate; `main`
turns any L2DError into one line on stderr and the error's exit code. Logging is set up here, once.
"""

from __future__ import annotations

import logging
import os
import sys
from types import ModuleType
from typing import Annotated

import typer

from .errors import L2DError

app = typer.Typer(
    name="l2d-obs",
    help="Live2Diff for OBS: put a live, temporally consistent AI style on your camera.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain click help: Rich markup would take bracketed words in help texts ("[switching]") for tags.
    rich_markup_mode=None,
)

log = logging.getLogger("l2d_obs")

# OpenCV prints its own "[ WARN:0@...]" lines (a camera or file that cannot open) before our one-line
# error. Its level comes from OPENCV_LOG_LEVEL, read once when cv2 is imported; a user's own setting wins.
_USER_OPENCV_LOG_LEVEL = os.environ.get("OPENCV_LOG_LEVEL")


class _OneLineFormatter(logging.Formatter):
    """Each record on one line: libraries log messages with line breaks in them (huggingface_hub's
    "...\nTrying to resume download...") that would read as separate, unlabelled lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        return super().formatMessage(record).replace("\n", " ")


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    # Third-party libraries are chatty at INFO; keep them at WARNING unless -vv.
    for noisy in ("diffusers", "transformers", "urllib3", "httpx", "httpx2", "obswebsocket", "websocket", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbose < 2 else logging.DEBUG)
    quiet_opencv(verbose)
    if verbose < 2:
        quiet_model_loading()


class _DropMessages(logging.Filter):
    def __init__(self, *starts: str) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.starts)


def quiet_model_loading() -> None:
    """diffusers warns on every ``.to(dtype)`` that "There are modules ... that should be kept in
    float32: []" - an empty list, nothing to do - in the middle of the start-up progress; -vv keeps it.
    (transformers' per-model loading bars are switched off where models load: weights/quiet.py.)"""
    for name in ("diffusers.models.modeling_utils", "diffusers.models.model_loading_utils"):
        logging.getLogger(name).addFilter(_DropMessages("There are modules in"))


def quiet_opencv(verbose: int) -> None:
    """Silence OpenCV's own log lines (kept with -vv, or when the user set OPENCV_LOG_LEVEL)."""
    if _USER_OPENCV_LOG_LEVEL is not None:
        return
    keep = verbose >= 2
    os.environ["OPENCV_LOG_LEVEL"] = "WARNING" if keep else "SILENT"  # for a cv2 imported later (and children)
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:  # already imported: it reads the environment no more, but its API sets the level
        levels = cv2.utils.logging
        levels.setLogLevel(levels.LOG_LEVEL_WARNING if keep else levels.LOG_LEVEL_SILENT)


@app.callback()
def _root(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (-v info, -vv debug).")] = 0,
) -> None:
    setup_logging(verbose)


def _command_sets() -> list[typer.Typer]:
    """Every area's commands (each module keeps its own in a Typer ``app``; none imports this one)."""
    from .commands import (
        bench_cmds, daemon_cmds, engine_cmds, eval_cmds, models_cmds, plugin_cmds, profiles_cmds, train_cmds,
    )

    return [module.app for module in (engine_cmds, daemon_cmds, models_cmds, profiles_cmds, bench_cmds, train_cmds,
                                      eval_cmds, plugin_cmds)]


_added: list[typer.Typer] = []  # command sets already on the root (main may run many times in one process)


def add_commands(commands: typer.Typer) -> None:
    """Put a command set's commands and groups on the root ``app``, once."""
    if not any(commands is known for known in _added):
        app.add_typer(commands)
        _added.append(commands)


def _register_commands() -> None:
    for commands in _command_sets():
        add_commands(commands)


def _click_exceptions() -> ModuleType:
    """The exceptions module of the click that Typer runs on: Typer 0.2x carries its own copy
    (typer._click), older Typer uses the click package; catching the other one's classes misses them."""
    try:
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions


def main(argv: list[str] | None = None) -> int:
    _register_commands()
    click_exceptions = _click_exceptions()
    no_args_is_help = getattr(click_exceptions, "NoArgsIsHelpError", ())
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
    except no_args_is_help as exc:  # a bare group (`l2d-obs`, `l2d-obs models`): its help is the answer
        print(exc.ctx.get_help())
        return 0
    except click_exceptions.ClickException as exc:  # usage errors come through here with standalone_mode=False
        exc.show()
        return exc.exit_code
    return result if isinstance(result, int) else 0


