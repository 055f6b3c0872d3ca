from __future__ import annotations

import http.client
import json
import stat

import pytest

from l2d_obs.control.client import ControlClient, read_control_file
from l2d_obs.control.server import ControlServer
from l2d_obs.errors import ControlError
from l2d_obs.profiles import load_profile


class StubDaemon:
    """Just enough of a daemon to exercise the HTTP layer; switching validates profiles like the real one."""

    def __init__(self) -> None:
        self.switched: list[str] = []
        self.stopped = False

    def status(self) -> dict:
        return {"state": "running", "profile": "tiny", "frames_published": 3}

    def request_switch(self, name: str) -> dict:
        load_profile(name)  # raises ProfileError on a bad one
        self.switched.append(name)
        return {"switching_to": name}

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def server():
    daemon = StubDaemon()
    srv = ControlServer(daemon, port=0)
    srv.start()
    yield srv, daemon
    srv.close()


def raw(srv, method, path, body=None, token="GOOD", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {srv.token if token == 'GOOD' else token}"
    conn.request(method, path, body=body, headers=h)
    resp = conn.getresponse()
    data = json.loads(resp.read() or b"{}")
    conn.close()
    return resp.status, data


def test_control_file_is_private_and_complete(server):
    srv, _ = server
    mode = stat.S_IMODE(srv.path.stat().st_mode)
    assert mode == 0o600
    info = read_control_file()
    assert (info.host, info.port, info.token) == ("127.0.0.1", srv.port, srv.token)
    assert srv.token not in repr(info)


def test_client_round_trip(server):
    srv, daemon = server
    client = ControlClient()
    assert client.status()["frames_published"] == 3
    assert "tiny" in client.profiles()["profiles"]
    assert client.switch("tiny") == {"switching_to": "tiny"} and daemon.switched == ["tiny"]
    assert client.stop() == {"stopping": True} and daemon.stopped


@pytest.mark.parametrize(
    "method, path, body, token, code, fragment",
    [
        ("GET", "/status", None, None, 401, "token"),
        ("GET", "/status", None, "wrong", 401, "token"),
        ("GET", "/nope", None, "GOOD", 404, "no such endpoint"),
        ("DELETE", "/status", None, "GOOD", 405, "takes GET"),
        ("POST", "/switch", b"{not json", "GOOD", 400, "not valid JSON"),
        ("POST", "/switch", b"[1, 2]", "GOOD", 400, "JSON object"),
        ("POST", "/switch", b'{"name": "tiny"}', "GOOD", 400, '{"profile": "NAME"}'),
        ("POST", "/switch", b'{"profile": "no-such-style"}', "GOOD", 400, "unknown profile 'no-such-style'"),
    ],
)
def test_bad_requests_get_one_line_errors_and_change_nothing(server, method, path, body, token, code, fragment):
    srv, daemon = server
    status, data = raw(srv, method, path, body, token)
    assert status == code
    assert set(data) == {"error"} and fragment in data["error"] and "\n" not in data["error"]
    assert not daemon.switched and not daemon.stopped
    assert raw(srv, "GET", "/status")[0] == 200  # still serving


def test_client_errors_are_control_errors(server, tmp_path, monkeypatch):
    srv, _ = server
    with pytest.raises(ControlError, match="unknown profile"):
        ControlClient().switch("no-such-style")
    monkeypatch.setenv("L2D_STATE_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(ControlError, match="no running daemon found"):
        ControlClient()


def test_control_file_removed_on_close(tmp_path):
    srv = ControlServer(StubDaemon(), port=0)
    srv.start()
    assert srv.path.exists()
    srv.close()
    assert not srv.path.exists()


def test_port_in_use_is_a_clear_error(server):
    srv, _ = server
    with pytest.raises(ControlError, match="another daemon running"):
        ControlServer(StubDaemon(), port=srv.port)

