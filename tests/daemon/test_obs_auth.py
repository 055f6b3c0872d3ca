"""A refused OBS password is explained: one WARNING line per change (however many connections hit it),
"auth failed" as the state, one error line at start; the password itself is never shown. And a config
file holding the password that others can read draws a warning. The OBS tests run against the real
headless OBS (tests/obs_harness.py), logging in with a wrong password through the real code path.
"""

from __future__ import annotations

import logging
import os
import struct
import time

import pytest

from l2d_obs.config import OBSSettings, Secret, SwitchRules, load_settings
from l2d_obs.control.obs_events import OBSEventSwitcher
from l2d_obs.daemon import Daemon
from l2d_obs.errors import OBSConnectionError, SinkError
from l2d_obs.obsclient import OBSAuthError, OBSClient, _closed_during_login
from l2d_obs.sinks.obs_return import OBSReturnSink
from l2d_obs.sources.obs import OBSSource
from tests.daemon.daemon_helpers import PassThroughEngine, RecordingSink, cli_env, cli_run, run_in_thread, tiny, wait_until
from tests.obs_harness import add_color_source

WRONG = "wrong-pw-5309-never-shown"
REFUSED = "refused the password (obs-websocket authentication failed)"


def _refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The refusals said at WARNING or above (retries may mention them at DEBUG)."""
    return [r for r in caplog.records if REFUSED in r.getMessage() and r.levelno >= logging.WARNING]


def _no_password(caplog: pytest.LogCaptureFixture, *texts: object, password: str = WRONG) -> None:
    assert not [t for t in [caplog.text, *map(str, texts)] if password in t]


# --- the close codes, without OBS ------------------------------------------------------------------


def test_close_code_4009_is_an_auth_error_with_the_fix():
    exc = _closed_during_login("127.0.0.1:4455", struct.pack("!H", 4009) + b"Authentication failed.")
    assert isinstance(exc, OBSAuthError) and exc.state == "auth failed" and exc.exit_code == 6
    assert str(exc) == (f"OBS at 127.0.0.1:4455 {REFUSED}: set L2D_OBS_PASSWORD or [obs] password in the config "
                        "file to the one in OBS > Tools > WebSocket Server Settings, then start l2d-obs again")


@pytest.mark.parametrize("frame, words", [
    (struct.pack("!H", 4010) + b"RPC 2 not supported", "obs-websocket close code 4010: unsupported RPC version; RPC 2"),
    (struct.pack("!H", 4008), "close code 4008: already identified)"),
    (b"", "(no close code)"),
])
def test_other_close_codes_are_named_and_are_no_auth_error(frame, words):
    exc = _closed_during_login("h:1", frame)
    assert type(exc) is OBSConnectionError and words in str(exc) and "\n" not in str(exc)


# --- against the real OBS --------------------------------------------------------------------------


@pytest.fixture
def fresh_auth(obs):
    """OBS with a camera, logged into once with the right password: whatever an earlier test reported as
    refused is cleared (one line per change)."""
    with obs.conn.client() as c:
        if "auth-cam" not in {i["inputName"] for i in c.request("GetInputList")["inputs"]}:
            c.request("CreateScene", {"sceneName": "auth-scene"})
            add_color_source(c, "auth-scene", "auth-cam", (200, 40, 40))
    return obs


def _wrong(obs) -> OBSSettings:
    return OBSSettings(obs.conn.host, obs.conn.port, Secret(WRONG))


def _right(obs) -> OBSSettings:
    return OBSSettings(obs.conn.host, obs.conn.port, Secret(obs.conn.password))


@pytest.mark.obs
def test_a_wrong_password_is_an_auth_error(fresh_auth):
    with pytest.raises(OBSAuthError, match="refused the password") as info:
        OBSClient(fresh_auth.conn.host, fresh_auth.conn.port, WRONG).connect()
    with pytest.raises(OBSAuthError, match="requires a password and none is set"):
        OBSClient(fresh_auth.conn.host, fresh_auth.conn.port, None).connect()
    assert WRONG not in str(info.value)


@pytest.mark.obs
def test_obs_restarting_with_another_password_is_one_warning_and_auth_failed(fresh_auth, caplog):
    """The daemon streams from OBS; the connection drops and the next logins are refused (as after OBS
    restarted with a new password): one warning line, not repeated by the source's retries nor by the
    output's and the event listener's own connections; then the right password again: back to live."""
    obs = fresh_auth
    src = OBSSource("auth-cam", _right(obs), fps=30)
    rec = RecordingSink(keep_pixels=False)
    d = Daemon(tiny(), src, [rec], PassThroughEngine)
    thread, result = run_in_thread(d.run)
    output = OBSReturnSink(_wrong(obs), scene="auth-scene", input_name="auth-media", wait=True, check_interval=0.2)
    events = OBSEventSwitcher(_wrong(obs), SwitchRules(), lambda request: None)
    try:
        assert wait_until(lambda: len(rec.records) >= 5, 60), d.status()
        with caplog.at_level(logging.DEBUG, logger="l2d_obs"):
            src.settings = _wrong(obs)
            src._client.close()  # the connection drops; every reopen now meets a refused password
            assert wait_until(lambda: src.state == "auth failed", 5)
            output.open(64, 64, 30.0)  # --wait: keeps retrying in the background, no error
            events.start()
            assert wait_until(lambda: events.auth_failed and output.status()["obs_state"] == "auth failed", 5)
            time.sleep(1.0)  # more refused retries of each
            assert [r.levelname for r in _refusals(caplog)] == ["WARNING"], caplog.text
            assert d.status()["source_state"] in ("reconnecting", "auth failed")  # "auth failed": see daemon.py
            assert not output.status()["obs_connected"]
            events.stop()  # (still refused after the source is back, they would say it again: a new change)
            output.close()
            src.settings = _right(obs)
            n = len(rec.records)
            assert wait_until(lambda: d.status()["source_state"] == "live" and len(rec.records) > n + 5, 15)
        assert src.state is None and len(_refusals(caplog)) == 1
        assert "accepted the password again" in caplog.text
        _no_password(caplog, d.status(), output.status(), password=obs.conn.password)
        _no_password(caplog, d.status(), output.status())
    finally:
        events.stop()
        output.close()
        d.stop()
        thread.join(5)
    assert "error" not in result, result


@pytest.mark.obs
def test_the_daemon_status_says_auth_failed(fresh_auth):
    obs = fresh_auth
    src = OBSSource("auth-cam", _right(obs), fps=30)
    d = Daemon(tiny(), src, [RecordingSink(keep_pixels=False)], PassThroughEngine)
    thread, result = run_in_thread(d.run)
    try:
        assert wait_until(lambda: d.stats.frames_captured >= 3, 60)
        src.settings = _wrong(obs)
        src._client.close()
        assert wait_until(lambda: d.status()["source_state"] == "auth failed", 3), d.status()
    finally:
        d.stop()
        thread.join(5)


@pytest.mark.obs
def test_output_without_wait_is_one_sink_error(fresh_auth):
    with pytest.raises(SinkError, match="cannot set up the OBS Media Source: OBS at .* refused the password") as info:
        OBSReturnSink(_wrong(fresh_auth), scene="auth-scene", input_name="auth-media").open(64, 64, 30.0)
    assert WRONG not in str(info.value)


@pytest.mark.obs
def test_start_with_a_wrong_password_is_one_line_and_exit_6(fresh_auth):
    env = cli_env({**fresh_auth.conn.env(), "L2D_OBS_PASSWORD": WRONG})
    r = cli_run("start", "--profile", "tiny", "--source", "obs:auth-cam", "--output", "null", "--frames", "3",
                "--control-port", "0", env=env, timeout=120)
    assert r.returncode == 6, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith(f"l2d-obs: error: OBS at 127.0.0.1:{fresh_auth.conn.port} {REFUSED}: set L2D_OBS_PASSWORD")
    assert sum(REFUSED in line for line in lines) == 1 and "Traceback" not in r.stderr
    assert WRONG not in r.stdout + r.stderr


# --- the config file -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode, warned", [(0o644, True), (0o640, True), (0o620, True), (0o600, False), (0o400, False)])
def test_a_config_file_with_the_password_that_others_can_read_is_warned_about(tmp_path, monkeypatch, caplog,
                                                                             mode, warned):
    path = tmp_path / "config.toml"
    path.write_text(f'[obs]\npassword = "{WRONG}"\n')
    os.chmod(path, mode)
    monkeypatch.setenv("L2D_CONFIG", str(path))
    with caplog.at_level(logging.WARNING, logger="l2d_obs"):
        assert load_settings().obs.password.reveal() == WRONG
        load_settings()  # a second read in the same process does not repeat it
    lines = [r.getMessage() for r in caplog.records]
    if warned:
        verb = "change" if mode == 0o620 else "read"
        assert lines == [f"{path} holds the OBS password but other users can {verb} it (mode {mode:03o}): "
                         f"run 'chmod 600 {path}'"]
    else:
        assert lines == []
    _no_password(caplog)


def test_a_readable_config_file_without_a_password_is_fine(tmp_path, monkeypatch, caplog):
    path = tmp_path / "config.toml"
    path.write_text('[obs]\nport = 4455\n')
    os.chmod(path, 0o644)
    monkeypatch.setenv("L2D_CONFIG", str(path))
    with caplog.at_level(logging.WARNING, logger="l2d_obs"):
        load_settings()
    assert caplog.records == []
