from __future__ import annotations

import pytest

from l2d_obs.config import Secret, load_settings
from l2d_obs.paths import state_dir
from l2d_obs.errors import ConfigError


def test_defaults_without_env_or_file():
    s = load_settings()
    assert (s.obs.host, s.obs.port, s.obs.password.reveal()) == ("127.0.0.1", 4455, "")
    assert s.control_port == 47811 and s.config_path is None


def test_file_then_env_then_cli_precedence(tmp_path, monkeypatch):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[obs]\nhost = "10.0.0.5"\nport = 4460\npassword = "filepw"\n[control]\nport = 5000\n')
    monkeypatch.setenv("L2D_CONFIG", str(cfg))
    s = load_settings()
    assert (s.obs.host, s.obs.port, s.obs.password.reveal(), s.control_port) == ("10.0.0.5", 4460, "filepw", 5000)
    monkeypatch.setenv("L2D_OBS_PORT", "4999")
    monkeypatch.setenv("L2D_OBS_PASSWORD", "envpw")
    s = load_settings(control_port=6000)
    assert (s.obs.host, s.obs.port, s.obs.password.reveal(), s.control_port) == ("10.0.0.5", 4999, "envpw", 6000)


def test_password_never_shows_in_repr_or_str(monkeypatch):
    monkeypatch.setenv("L2D_OBS_PASSWORD", "hunter2-secret")
    s = load_settings()
    for text in (repr(s), str(s), repr(s.obs), f"{s.obs.password}", str(s.obs.password)):
        assert "hunter2-secret" not in text
    assert s.obs.password.reveal() == "hunter2-secret"
    assert Secret("a") == Secret("a") and not Secret("")


@pytest.mark.parametrize(
    "content, message",
    [
        ("[obs]\nport = 'x'\n", "obs.port"),
        ("[obs]\npasword = 'x'\n", "unknown key 'obs.pasword'"),
        ("[nope]\n", "unknown section [nope]"),
        ("[obs\n", "not valid TOML"),
        ("[obs]\nport = 70000\n", "1..65535"),
    ],
)
def test_bad_config_file_names_the_problem(tmp_path, monkeypatch, content, message):
    cfg = tmp_path / "config.toml"
    cfg.write_text(content)
    monkeypatch.setenv("L2D_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_settings()


def test_bad_env_port(monkeypatch):
    monkeypatch.setenv("L2D_OBS_PORT", "fortyfour")
    with pytest.raises(ConfigError, match="L2D_OBS_PORT"):
        load_settings()


def test_state_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("L2D_STATE_DIR", str(tmp_path / "st"))
    assert state_dir() == tmp_path / "st"
