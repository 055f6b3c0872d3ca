"""A non-editable install from a built wheel works from any folder: the shipped profiles, the trained
models and the OBS script are package data (the README's commands must hold for it too)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_runs_from_another_folder(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels)], check=True, capture_output=True, timeout=300, cwd=tmp_path)  # fmt: skip
    wheel = next(wheels.glob("l2d_obs-*.whl"))
    venv = tmp_path / "venv"
    # The heavy dependencies (torch, diffusers, ...) come from this interpreter's site-packages; the
    # package itself only from the wheel.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("L2D_")}
    env.update(L2D_STATE_DIR=str(tmp_path / "state"), L2D_PROFILES_DIR=str(tmp_path / "no-user-profiles"),
               L2D_CONFIG=str(tmp_path / "no-config.toml"), PYTHONPATH="")  # fmt: skip
    cli = [str(venv / "bin" / "l2d-obs")]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*cli, *args], capture_output=True, text=True, timeout=300, cwd=elsewhere, env=env)

    where = subprocess.run([str(python), "-c", "import l2d_obs; print(l2d_obs.__file__)"], capture_output=True,
                           text=True, cwd=elsewhere, env=env, check=True).stdout.strip()  # fmt: skip
    assert where.startswith(str(venv)), f"l2d_obs imported from {where}, not from the wheel"

    listed = run("profiles", "list")
    assert listed.returncode == 0, listed.stderr
    for name in ("tiny", "toon", "pencil", "vangogh", "cartoon", "zaum"):
        assert name in listed.stdout, (name, listed.stdout)

    started = run("start", "--profile", "tiny", "--source", "pattern", "--output", "null", "--frames", "5",
                  "--control-port", "0")  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert "stopped after 5 frames" in started.stderr

    script = run("plugin", "path")
    assert script.returncode == 0, script.stderr
    path = Path(script.stdout.strip())
    assert path.is_file() and path.name == "l2d_obs_hotkeys.py" and str(path).startswith(str(venv))
    # The script finds the shipped profiles next to it, as in a checkout.
    assert (path.resolve().parent.parent / "profiles" / "toon.toml").is_file()
