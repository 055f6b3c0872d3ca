"""Tokens go only to the host they belong to: a civitai download that redirects to another origin (a
storage host) sends it no Authorization header and no token in the query, still completes, and no log
line, progress output or error message shows the token. Loopback only: server A plays civitai (through
$L2D_CIVITAI_URL), server B (another port, or another host name) plays the storage host.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Iterator

import pytest

from l2d_obs.errors import DownloadError
from l2d_obs.weights import network
from l2d_obs.weights.download import download_url, fetch
from l2d_obs.weights.plan import Requirement
from l2d_obs.weights.sources import CivitaiSource

TOKEN = "l2d-test-token-4711-secret"
PAYLOAD = bytes(range(256)) * 64
VERSION = 77


@dataclass
class Seen:
    path: str
    authorization: str | None


@dataclass
class Server:
    httpd: http.server.ThreadingHTTPServer
    seen: list[Seen] = field(default_factory=list)
    redirect: str = ""  # where /api/download/... sends the client ({A} and {B} filled in)
    download_url: str = ""  # the downloadUrl the version JSON names
    missing: bool = False  # /files/... answers 404

    @property
    def port(self) -> int:
        return self.httpd.server_port


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        me: Server = self.server.l2d  # type: ignore[attr-defined]
        me.seen.append(Seen(self.path, self.headers.get("Authorization")))
        if self.path.startswith("/api/v1/model-versions/"):
            body = json.dumps({"id": VERSION, "files": [{
                "name": "w.safetensors", "type": "Model", "primary": True, "metadata": {"format": "SafeTensor"},
                "downloadUrl": me.download_url, "hashes": {"SHA256": hashlib.sha256(PAYLOAD).hexdigest()},
            }]}).encode()
            self._answer(200, body, "application/json")
        elif self.path.startswith(("/api/download/", "/dl")):
            self.send_response(302)
            self.send_header("Location", me.redirect)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path.startswith("/files/") and not me.missing:
            self._answer(200, PAYLOAD, "application/octet-stream")
        else:
            self._answer(404, b"no such file", "text/plain")

    def _answer(self, code: int, body: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _serve() -> Server:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server = Server(httpd)
    httpd.l2d = server  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


@pytest.fixture
def pair(monkeypatch) -> Iterator[tuple[Server, Server]]:
    """A (civitai, holds the token) and B (storage, another port), with civitai pointed at A."""
    a, b = _serve(), _serve()
    monkeypatch.setenv("L2D_CIVITAI_URL", f"http://127.0.0.1:{a.port}/api/v1")
    monkeypatch.setenv("CIVITAI_TOKEN", TOKEN)
    monkeypatch.setenv("L2D_NETWORK_TIMEOUT", "3")
    monkeypatch.setattr(network, "RETRY_WAITS", (0.05, 0.05))
    for var in ("HF_HUB_OFFLINE", "L2D_OFFLINE"):  # the real download path, against 127.0.0.1 only
        monkeypatch.delenv(var, raising=False)
    a.download_url = f"http://127.0.0.1:{a.port}/api/download/models/{VERSION}"
    yield a, b
    for s in (a, b):
        s.httpd.shutdown()
        s.httpd.server_close()


def _fill(url: str, a: Server, b: Server) -> str:
    return url.format(A=a.port, B=b.port)


def _fetch() -> bytes:
    path = fetch(Requirement("lora:x", "model.loras[0]", CivitaiSource(5, VERSION)))
    return path.read_bytes()


def _assert_nowhere(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], *more: str) -> None:
    out, err = capfd.readouterr()
    texts = [caplog.text, out, err, *more, *(r.getMessage() for r in caplog.records)]
    assert not [t for t in texts if TOKEN in t]


@pytest.mark.parametrize("storage", [
    "http://127.0.0.1:{B}/files/w.safetensors",  # another port
    "http://localhost:{A}/files/w.safetensors",  # the same port under another host name
])
def test_a_redirect_to_another_origin_gets_no_token(pair, storage, caplog, capfd):
    a, b = pair
    a.redirect = _fill(storage, a, b)
    with caplog.at_level(logging.DEBUG):
        assert _fetch() == PAYLOAD
    assert [s.authorization for s in a.seen if "/api/" in s.path] == [f"Bearer {TOKEN}"] * 2  # JSON + download
    storage_hits = [s for s in (b.seen if "{B}" in storage else a.seen) if s.path.startswith("/files/")]
    assert storage_hits and all(s.authorization is None and TOKEN not in s.path for s in storage_hits)
    _assert_nowhere(caplog, capfd)


def test_a_redirect_within_the_same_origin_keeps_the_token(pair, caplog, capfd):
    a, b = pair
    a.redirect = "/files/w.safetensors"  # relative: the same scheme, host and port
    with caplog.at_level(logging.DEBUG):
        assert _fetch() == PAYLOAD
    assert [s.authorization for s in a.seen] == [f"Bearer {TOKEN}"] * 3 and not b.seen
    _assert_nowhere(caplog, capfd)


def test_a_download_url_on_another_origin_never_gets_the_token(pair, caplog, capfd):
    a, b = pair
    a.download_url = f"http://127.0.0.1:{b.port}/files/w.safetensors"
    with caplog.at_level(logging.DEBUG):
        assert _fetch() == PAYLOAD
    assert [s.authorization for s in b.seen] == [None]
    _assert_nowhere(caplog, capfd)


def test_a_token_in_the_redirect_query_is_not_passed_on(pair, caplog, capfd):
    a, b = pair
    a.redirect = f"http://127.0.0.1:{b.port}/files/w.safetensors?token={TOKEN}&X-Amz-Expires=60"
    with caplog.at_level(logging.DEBUG):
        assert _fetch() == PAYLOAD
    (hit,) = b.seen
    assert hit.authorization is None and TOKEN not in hit.path and hit.path.endswith("?X-Amz-Expires=60")
    _assert_nowhere(caplog, capfd)


def test_a_url_with_a_query_token_keeps_it_at_home_and_out_of_errors(pair, tmp_path, caplog, capfd):
    """A direct URL carrying ?token=: the redirect target gets neither it nor a header, and the error
    after the redirect (404 at the storage host) does not show it."""
    a, b = pair
    b.missing = True
    a.redirect = f"http://127.0.0.1:{b.port}/files/w.safetensors?token={TOKEN}"
    with caplog.at_level(logging.DEBUG), pytest.raises(DownloadError) as info:
        download_url(f"http://127.0.0.1:{a.port}/dl?token={TOKEN}", tmp_path / "w.safetensors")
    assert "HTTP 404" in str(info.value)
    assert [s.path for s in a.seen] == [f"/dl?token={TOKEN}"]
    assert [(s.path, s.authorization) for s in b.seen] == [("/files/w.safetensors", None)]
    _assert_nowhere(caplog, capfd, str(info.value))


def test_error_messages_redact_tokens(monkeypatch):
    monkeypatch.setenv("CIVITAI_TOKEN", TOKEN)
    text = network.redact(f"cannot fetch http://h/x?token=abc123&X-Amz-Signature=f00d&page=2 with {TOKEN}")
    assert text == "cannot fetch http://h/x?token=***&X-Amz-Signature=***&page=2 with ***"


def test_the_token_is_an_unredirected_header_only_on_its_own_origin():
    secret = {"Authorization": f"Bearer {TOKEN}"}
    home = network.make_request("http://127.0.0.1:9/x", secret)
    assert "Authorization" not in home.headers and home.unredirected_hdrs["Authorization"] == f"Bearer {TOKEN}"
    away = network.make_request("http://127.0.0.1:10/x", secret, owner="http://127.0.0.1:9/api")
    assert not away.has_header("Authorization")
    assert TOKEN not in repr(getattr(home, network._CREDENTIAL))
