"""Where the OBS script lives: package data (``l2d_obs/data/plugin``, a link to the repository's
``plugin/`` in a checkout and a copy in a built wheel), so every installation has it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SCRIPT_NAME = "l2d_obs_hotkeys.py"


def plugin_script() -> Path:
    return Path(str(resources.files("l2d_obs") / "data" / "plugin" / SCRIPT_NAME))
