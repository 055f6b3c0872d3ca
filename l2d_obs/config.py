"""Settings: command line > environment > config file > defaults.

OBS connection details (host, port, password) come only from the environment (``L2D_OBS_HOST``,
``L2D_OBS_PORT``, ``L2D_OBS_PASSWORD``) or the config file (``paths.config_file()``: ``$L2D_CONFIG`` or
``~/.config/l2d-obs/config.toml``, section ``[obs]``) — never from argv, where any user on the machine
could read them in ``ps``. The password is kept in a ``Secret`` whose repr/str hide it, so it cannot
leak into a log line or status output by accident. A config file that holds a secret (``obs.password``)
while its mode lets the group or others in (``st_mode & 0o077``) draws one WARNING naming the file and
``chmod 600 FILE``.
"""

from __future__ import annotations

import logging
import os
import shlex
import stat
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .paths import config_file

log = logging.getLogger(__name__)

DEFAULT_OBS_PORT = 4455
DEFAULT_CONTROL_PORT = 47811


class Secret:
    """A string that never shows itself in repr/str/format."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class OBSSettings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_OBS_PORT
    password: Secret = Secret("")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class SwitchRules:
    """OBS events that switch styles: program scene -> profile, source shown -> profile, custom events."""

    scenes: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    custom_events: bool = True


@dataclass(frozen=True)
class Settings:
    obs: OBSSettings
    control_port: int = DEFAULT_CONTROL_PORT
    switching: SwitchRules = SwitchRules()
    config_path: Path | None = None  # the file that was read, if any


_FILE_KEYS = {
    "obs": {"host": str, "port": int, "password": str},
    "control": {"port": int},
    # style switching from OBS events (see l2d_obs/control/obs_events.py)
    "switching": {"scenes": dict, "sources": dict, "custom_events": bool},
}


_SECRETS = {("obs", "password"): "OBS password"}  # config keys that hold secrets -> their name in words
_warned_lock = threading.Lock()
_warned: set[tuple[str, int]] = set()  # (file, mode) already warned about in this process


def _warn_if_readable(path: Path, data: dict[str, Any]) -> None:
    """One WARNING when ``path`` holds a secret and its group or others may read or change it."""
    secrets = [words for (sec, key), words in _SECRETS.items() if data.get(sec, {}).get(key)]
    if not secrets or os.name == "nt":
        return
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if not mode & 0o077:
        return
    with _warned_lock:
        if (str(path), mode) in _warned:
            return
        _warned.add((str(path), mode))
    access = "read" if mode & 0o044 else "change"
    log.warning("%s holds the %s but other users can %s it (mode %03o): run 'chmod 600 %s'",
                path, " and the ".join(secrets), access, mode, shlex.quote(str(path)))


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    for section, value in data.items():
        if section not in _FILE_KEYS or not isinstance(value, dict):
            raise ConfigError(f"{path}: unknown section [{section}] (known: {', '.join(_FILE_KEYS)})")
        for key, v in value.items():
            expected = _FILE_KEYS[section].get(key)
            if expected is None:
                raise ConfigError(f"{path}: unknown key '{section}.{key}' (known: {', '.join(_FILE_KEYS[section])})")
            if not isinstance(v, expected) or (isinstance(v, bool) and expected is not bool):
                raise ConfigError(f"{path}: '{section}.{key}' must be a {expected.__name__}")
            if expected is dict:
                bad = [k for k, name in v.items() if not isinstance(name, str) or not name.strip()]
                if bad:
                    raise ConfigError(f"{path}: '{section}.{key}.{bad[0]}' must name a style profile (a string)")
    _warn_if_readable(path, data)
    return data


def _port(value: str | int, where: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise ConfigError(f"{where}: port must be a number, got {value!r}") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"{where}: port must be 1..65535, got {port}")
    return port


def load_settings(control_port: int | None = None) -> Settings:
    """Resolve settings. ``control_port`` is the command-line value, if given."""
    path = config_file()
    data = _read_file(path)
    obs_file = data.get("obs", {})
    env = os.environ
    host = env.get("L2D_OBS_HOST") or obs_file.get("host") or OBSSettings.host
    if "L2D_OBS_PORT" in env and env["L2D_OBS_PORT"]:
        port = _port(env["L2D_OBS_PORT"], "L2D_OBS_PORT")
    else:
        port = _port(obs_file.get("port", DEFAULT_OBS_PORT), f"{path}: obs.port")
    password = env.get("L2D_OBS_PASSWORD")
    if password is None:
        password = obs_file.get("password", "")
    if control_port is None:
        control_port = _port(data.get("control", {}).get("port", DEFAULT_CONTROL_PORT), f"{path}: control.port")
    switching = data.get("switching", {})
    return Settings(
        obs=OBSSettings(host=host, port=port, password=Secret(password)),
        control_port=control_port,
        switching=SwitchRules(
            scenes=dict(switching.get("scenes", {})),
            sources=dict(switching.get("sources", {})),
            custom_events=switching.get("custom_events", True),
        ),
        config_path=path if data else None,
    )
