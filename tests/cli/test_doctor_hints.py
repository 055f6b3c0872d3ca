"""`l2d-obs doctor` gives each hint once per row, and every command or option it suggests exists: an
option of another command is named with that command ('l2d-obs start --wait'), never bare."""

from __future__ import annotations

import re
import socket

import pytest
import typer.main

from l2d_obs import cli

QUOTED = re.compile(r"'l2d-obs ([^']*)'")
OPTION = re.compile(r"(?<![\w-])--[a-z][\w-]*")


@pytest.fixture
def doctor_output(tmp_path, monkeypatch, capsys) -> str:
    """Doctor for vangogh with nothing there: no weights, OBS not listening (and, here, no GPU)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        monkeypatch.setenv("L2D_OBS_PORT", str(port))
        monkeypatch.setenv("L2D_MODELS_DIR", str(tmp_path / "models"))
        monkeypatch.setenv("L2D_PROFILES_DIR", str(tmp_path / "profiles"))
        monkeypatch.setenv("L2D_CONFIG", str(tmp_path / "none.toml"))
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        code = cli.main(["doctor", "--profile", "vangogh"])
    out = capsys.readouterr().out
    assert code != 0
    return out


def command(path: list[str]):
    cli._register_commands()
    found = typer.main.get_command(cli.app)
    for name in path:
        found = found.commands[name]
    return found


def options_of(cmd) -> set[str]:
    return {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}


def test_the_download_hint_is_given_once(doctor_output):
    row = next(line for line in doctor_output.splitlines() if "model files (vangogh)" in line)
    assert row.startswith("FAIL")
    assert doctor_output.count("l2d-obs models download --profile vangogh") == 1
    for field in ("model.base", "model.motion", "model.lcm_lora", "model.vae", "depth.estimator"):
        assert row.count(field) == 1, field


def test_every_suggested_command_and_option_exists(doctor_output):
    suggested = QUOTED.findall(doctor_output)
    assert "models download --profile vangogh" in suggested
    for text in suggested:
        words = text.split()
        path = []
        while words and not words[0].startswith("-") and hasattr(command(path), "commands"):
            path.append(words.pop(0))
        cmd = command(path)
        for option in OPTION.findall(" ".join(words)):
            assert option in options_of(cmd), f"'l2d-obs {text}': {option} is no option of {' '.join(path)}"
    bare = OPTION.findall(QUOTED.sub("", doctor_output))
    assert set(bare) <= options_of(command(["doctor"])), f"options doctor does not have: {bare}"


def test_obs_row_names_the_command_that_waits(doctor_output):
    row = next(line for line in doctor_output.splitlines() if "OBS" in line and "cannot reach" in line)
    assert "'l2d-obs start --wait'" in row and row.count("--wait") == 1
