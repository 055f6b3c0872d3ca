"""Where l2d-obs keeps things on disk: every environment-then-XDG lookup, and the package's own data.

Each place is ``$L2D_...`` when set (``~`` expanded), else under the XDG base directory for its kind
(``$XDG_CONFIG_HOME``, ``$XDG_STATE_HOME``, ``$XDG_CACHE_HOME``, each with its XDG default under the
home folder), in an ``l2d-obs`` folder. Read at every call, so a changed environment (a test, a child
process) is seen at once.
"""

from __future__ import annotations

import os
from pathlib import Path

# Package data (SD1.5 configs, shipped profiles and models, the OBS script): inside the installed package
# (links into the repository in a checkout, copies in a built wheel).
DATA_DIR = Path(__file__).resolve().parent / "data"
SHIPPED_PROFILES_DIR = DATA_DIR / "profiles"

_XDG_DEFAULTS = {
    "XDG_CONFIG_HOME": (".config",),
    "XDG_STATE_HOME": (".local", "state"),
    "XDG_CACHE_HOME": (".cache",),
}


def _lookup(env: str, xdg: str, *under: str) -> Path:
    """``$env`` if set and not empty, else ``$xdg/l2d-obs/<under>`` (XDG's default when ``$xdg`` is unset)."""
    explicit = os.environ.get(env)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get(xdg) or str(Path.home().joinpath(*_XDG_DEFAULTS[xdg]))
    return Path(base, "l2d-obs", *under)


def config_file() -> Path:
    """The settings file (``[obs]``, ``[control]``, ``[switching]``): ``$L2D_CONFIG``."""
    return _lookup("L2D_CONFIG", "XDG_CONFIG_HOME", "config.toml")


def user_profiles_dir() -> Path:
    """The user's own profiles, which override shipped ones by name: ``$L2D_PROFILES_DIR``."""
    return _lookup("L2D_PROFILES_DIR", "XDG_CONFIG_HOME", "profiles")


def state_dir() -> Path:
    """A running daemon's lock and control file: ``$L2D_STATE_DIR``."""
    return _lookup("L2D_STATE_DIR", "XDG_STATE_HOME")


def models_dir() -> Path:
    """The model cache (downloads, Hugging Face's cache under ``hf/``): ``$L2D_MODELS_DIR``."""
    return _lookup("L2D_MODELS_DIR", "XDG_CACHE_HOME", "models")
