"""Every command's --help renders its help texts whole: words in square brackets ("[switching]",
"vcam[:DEVICE]") are not taken for markup and dropped."""

from __future__ import annotations

import re

import pytest
import typer.main

from l2d_obs import cli

BRACKETED = re.compile(r"\S*\[[^\]\s]*\]\S*")


def commands() -> list[tuple[list[str], object]]:
    cli._register_commands()
    found: list[tuple[list[str], object]] = []

    def walk(command, path: list[str]) -> None:
        found.append((path, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(cli.app), [])
    return found


def help_texts(command) -> list[str]:
    texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    return [t for t in texts if t]


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("path, command", commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_help_renders_every_bracketed_word(path, command, capsys):
    assert cli.main([*path, "--help"]) == 0
    shown = flat(capsys.readouterr().out)
    for text in help_texts(command):
        for word in BRACKETED.findall(text):
            assert word in shown, f"'{word}' of {' '.join(path) or 'l2d-obs'} --help is missing from:\n{shown}"
        assert "\\[" not in shown  # an escape meant for Rich would show as a backslash


def test_the_helps_that_lost_words_before(capsys):
    assert cli.main(["start", "--help"]) == 0
    shown = flat(capsys.readouterr().out)
    assert "([switching] in the config file, custom events)" in shown
    assert "vcam[:DEVICE]: a virtual camera" in shown and "obs[:SCENE]: " in shown and "mjpeg[:PORT]: " in shown


def test_some_help_texts_have_brackets_at_all():
    """Keeps the first test meaningful: at least these bracketed words are checked."""
    words = {w for _, c in commands() for t in help_texts(c) for w in BRACKETED.findall(t)}
    assert any("[switching]" in w for w in words) and any("vcam[:DEVICE]" in w for w in words)
