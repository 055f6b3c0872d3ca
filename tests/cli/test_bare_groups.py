"""Bare group commands (`l2d-obs`, `l2d-obs models`, `l2d-obs profiles`, ...) print their help and exit 0,
with no traceback: as the console script and as `python -m l2d_obs`, and through `main()`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from l2d_obs import cli

REPO = Path(__file__).resolve().parents[2]
# What the `l2d-obs` console script runs (pyproject: l2d-obs = "l2d_obs.cli:main"), and the module form.
CONSOLE_SCRIPT = [sys.executable, "-c", "import sys; from l2d_obs.cli import main; sys.exit(main())"]
MODULE = [sys.executable, "-m", "l2d_obs"]


def groups() -> list[list[str]]:
    """The command path of every group in the CLI, the root included."""
    cli._register_commands()
    found: list[list[str]] = []

    def walk(command, path: list[str]) -> None:
        if hasattr(command, "commands"):
            found.append(path)
            for name, sub in command.commands.items():
                walk(sub, [*path, name])

    walk(typer.main.get_command(cli.app), [])
    return found


def test_the_cli_has_the_groups_we_test():
    assert [] in groups() and ["models"] in groups() and ["profiles"] in groups()


@pytest.mark.parametrize("path", groups(), ids=lambda p: " ".join(p) or "l2d-obs")
def test_a_bare_group_prints_help_and_exits_0(path, capsys):
    assert cli.main(path) == 0
    out, err = capsys.readouterr()
    assert "Usage:" in out and "Commands:" in out
    assert "Traceback" not in out + err and err == ""


@pytest.mark.parametrize("runner", [CONSOLE_SCRIPT, MODULE], ids=["console-script", "python-m"])
@pytest.mark.parametrize("path", [[], ["models"], ["profiles"]], ids=["l2d-obs", "models", "profiles"])
def test_bare_groups_as_a_user_runs_them(runner, path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([*runner, *path], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout and "Traceback" not in result.stdout + result.stderr


def test_usage_errors_are_click_messages_not_tracebacks(capsys):
    assert cli.main(["render"]) == 2  # a missing argument
    assert cli.main(["--no-such-option"]) == 2
    out, err = capsys.readouterr()
    assert "Missing argument 'INPUT'" in err and "No such option: --no-such-option" in err
    assert "Traceback" not in out + err
