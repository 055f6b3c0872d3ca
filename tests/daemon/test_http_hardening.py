"""Both local HTTP servers (control API, MJPEG preview) under hostile or careless clients, loopback only.

Host/Origin checks against DNS rebinding, JSON for every answer, timeouts and caps that keep one client
from holding the server, no 5xx and no traceback from anything a client sends (a bounded fuzz), the
stream's rate unaffected by that fuzz, and a control file that no planted link can redirect.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import socket
import stat
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from l2d_obs.control import server as server_mod
from l2d_obs.control.server import ControlServer
from l2d_obs.errors import ControlError, ProfileError
from l2d_obs.frames import Frame
from l2d_obs.sinks.mjpeg import MAX_VIEWERS, MJPEGSink
from tests.daemon.daemon_helpers import wait_until

pytestmark = pytest.mark.timeout(120)

KNOWN_PROFILES = {"tiny"}


class FakeDaemon:
    """The Controllable protocol with no engine: switches only to known names."""

    def __init__(self) -> None:
        self.switched: list[str] = []
        self.stops = 0

    def status(self) -> dict:
        return {"state": "running", "profile": "tiny", "frames_published": 7}

    def request_switch(self, name: str) -> dict:
        if name not in KNOWN_PROFILES:
            raise ProfileError(f"unknown profile {name!r}")
        self.switched.append(name)
        return {"switching_to": name}

    def stop(self) -> None:
        self.stops += 1


@pytest.fixture
def control():
    daemon = FakeDaemon()
    srv = ControlServer(daemon, port=0, timeout=1.0)
    srv.start()
    yield srv, daemon
    srv.close()


@pytest.fixture
def mjpeg():
    sink = MJPEGSink(port=0, timeout=1.0)
    sink.open(64, 48, 30)
    sink.write(Frame(np.full((48, 64, 3), 200, np.uint8), 0))
    yield sink
    sink.close()


def request(port: int, method: str, path: str, headers: dict | None = None, body: bytes | None = None,
            timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def auth(srv: ControlServer, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {srv.token}", **extra}


def exchange(port: int, data: bytes, timeout: float = 5.0) -> tuple[int | None, bytes]:
    """Send raw bytes, read until the server closes; (status or None for a headerless answer, raw reply)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    reply = b"".join(chunks)
    if reply.startswith(b"HTTP/"):
        return int(reply.split(b" ", 2)[1]), reply
    return None, reply


def json_error(body: bytes) -> str:
    data = json.loads(body)
    assert set(data) == {"error"} and "\n" not in data["error"], data
    return data["error"]


# --- Host and Origin --------------------------------------------------------------------------
FOREIGN_HOSTS = ["evil.example", "evil.example:{port}", "127.0.0.1:1", "127.0.0.2:{port}", "localhost.:{port}",
                 "127.0.0.1.evil.example:{port}", "[::2]:{port}", ""]
LOOPBACK_HOSTS = ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "127.0.0.1", "localhost", "LocalHost:{port}"]
FOREIGN_ORIGINS = ["http://evil.example", "null", "http://127.0.0.1:1", "https://127.0.0.1:{port}",
                   "http://127.0.0.1:{port}.evil.example", "http://evil.example:{port}"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:{port}", "http://localhost:{port}"]


def _get(kind: str, srv, headers: dict) -> tuple[int, dict, bytes]:
    if kind == "control":
        return request(srv.port, "GET", "/status", auth(srv, **headers))
    return request(srv.port, "GET", "/frame.jpg", headers)


@pytest.fixture(params=["control", "mjpeg"])
def any_server(request, control, mjpeg):
    return request.param, (control[0] if request.param == "control" else mjpeg)


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
def test_foreign_host_is_refused_on_both_servers(any_server, host):
    kind, srv = any_server
    code, headers, body = _get(kind, srv, {"Host": host.format(port=srv.port)})
    assert code == 421 and headers["content-type"] == "application/json"
    assert "is not this server" in json_error(body)
    assert not body.startswith(b"\xff\xd8")  # no JPEG, no status


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_loopback_host_is_accepted_on_both_servers(any_server, host):
    kind, srv = any_server
    code, headers, body = _get(kind, srv, {"Host": host.format(port=srv.port)})
    assert code == 200, body
    assert headers["content-type"] == ("application/json" if kind == "control" else "image/jpeg")


def test_request_without_host_is_accepted(control, mjpeg):
    srv, _ = control
    code, reply = exchange(srv.port, f"GET /status HTTP/1.0\r\nAuthorization: Bearer {srv.token}\r\n\r\n".encode())
    assert code == 200 and b'"frames_published": 7' in reply
    code, reply = exchange(mjpeg.port, b"GET /frame.jpg HTTP/1.0\r\n\r\n")
    assert code == 200 and b"\r\n\r\n\xff\xd8" in reply


def test_two_host_headers_are_refused(control):
    srv, _ = control
    code, reply = exchange(srv.port, f"GET /status HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nHost: evil.example\r\n"
                                     f"Authorization: Bearer {srv.token}\r\n\r\n".encode())
    assert code == 400 and b"more than one Host" in reply


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
def test_foreign_origin_is_refused_on_both_servers(any_server, origin):
    kind, srv = any_server
    code, headers, body = _get(kind, srv, {"Origin": origin.format(port=srv.port)})
    assert code == 403 and headers["content-type"] == "application/json"
    assert "cross-origin request refused" in json_error(body)


@pytest.mark.parametrize("origin", LOOPBACK_ORIGINS)
def test_loopback_origin_is_accepted_on_both_servers(any_server, origin):
    kind, srv = any_server
    assert _get(kind, srv, {"Origin": origin.format(port=srv.port)})[0] == 200


# --- JSON for every method and every refusal ------------------------------------------------
@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "PATCH", "TRACE", "FOO", "get"])
def test_other_methods_get_json_4xx_on_both_servers(control, mjpeg, method):
    srv, daemon = control
    code, headers, body = request(srv.port, method, "/status", auth(srv))
    assert code == 405 and headers["content-type"] == "application/json" and headers["allow"] == "GET"
    if method != "HEAD":  # a HEAD answer carries the JSON's headers only
        assert "takes GET" in json_error(body)
    code, headers, body = request(mjpeg.port, method, "/frame.jpg")
    assert code == 405 and headers["content-type"] == "application/json"
    if method != "HEAD":
        assert "takes GET" in json_error(body)
    assert not daemon.switched and not daemon.stops


@pytest.mark.parametrize("raw_request, code", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /status HTTP/2.0\r\n\r\n", 400),  # the base class says 505; no 5xx for what a client sends
    (b"GET /status HTTP/1.x\r\n\r\n", 400),
    (b"GET /status HTTP/0.9\r\n\r\n", 400),
    (b"GET /status\r\n\r\n", 401),  # a request line without a version still gets a status line
    (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET /status HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n", 431),
    (b"GET /status HTTP/1.1\r\n" + b"X: 1\r\n" * 150 + b"\r\n", 431),
    (b"POST /switch HTTP/1.1\r\nContent-Length: nope\r\n\r\n", 400),
    (b"POST /switch HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
])
def test_malformed_requests_get_json_4xx(control, raw_request, code):
    srv, _ = control
    got, reply = exchange(srv.port, raw_request)
    assert got == code, reply[:200]
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"Content-Type: application/json" in head
    json_error(body)


def test_missing_pages_get_json_on_the_preview(mjpeg):
    code, headers, body = request(mjpeg.port, "GET", "/nope")
    assert code == 404 and "no such page" in json_error(body)


NESTED = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize("body, fragment", [
    (NESTED.encode(), "nested too deep"),
    (('{"profile": ' + NESTED + "}").encode(), "nested too deep"),
    (b'{"profile": ' + b"9" * 5000 + b"}", "not valid JSON"),
    (b'{"profile": "ti\xff\xfeny"}', "not valid JSON"),
    (json.dumps({"profile": "ti\x00ny"}).encode(), "printable characters"),
    (json.dumps({"profile": "tiny\x1b[31m"}).encode(), "printable characters"),
    (json.dumps({"profile": "\ud800"}).encode(), "printable characters"),
    (json.dumps({"profile": "x" * 1000}).encode(), "printable characters"),
    (json.dumps({"profile": "/etc/l2d/tiny.toml"}).encode(), "switch takes a profile name"),
    (json.dumps({"profile": "tiny.toml"}).encode(), "switch takes a profile name"),
    (json.dumps({"profile": "../profiles/tiny"}).encode(), "switch takes a profile name"),
    (json.dumps({"profile": "a\\b"}).encode(), "switch takes a profile name"),
])
def test_bad_switch_bodies_get_400_and_change_nothing(control, body, fragment):
    srv, daemon = control
    code, _, reply = request(srv.port, "POST", "/switch", auth(srv), body)
    assert code == 400 and fragment in json_error(reply)
    assert not daemon.switched
    assert request(srv.port, "POST", "/switch", auth(srv), b'{"profile": "tiny"}')[0] == 200


# --- timeouts, backlog, connection cap -------------------------------------------------------
def test_short_body_and_idle_connections_do_not_block_a_normal_request(control):
    srv, _ = control  # socket timeout 1 s
    short = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    short.sendall(f"POST /switch HTTP/1.1\r\nAuthorization: Bearer {srv.token}\r\nContent-Length: 100\r\n\r\n"
                  '{"profile"'.encode())
    idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(50)]
    try:
        t0 = time.monotonic()
        code, _, _ = request(srv.port, "GET", "/status", auth(srv), timeout=3)
        assert code == 200 and time.monotonic() - t0 < 1.0
        # The server gives up on both within its timeout: the short body gets a 408, the idle ones a close.
        reply = b""
        while chunk := short.recv(4096):
            reply += chunk
        assert reply.startswith(b"HTTP/1.0 408") and b"shorter than its Content-Length" in reply
        assert all(s.recv(1) == b"" for s in idle)
        assert wait_until(lambda: srv.open_connections == 0, 3)
        assert time.monotonic() - t0 < 4.0
    finally:
        for s in [short, *idle]:
            s.close()


def test_connection_cap_answers_503_json_quickly(monkeypatch):
    srv = ControlServer(FakeDaemon(), port=0, timeout=3.0, max_connections=4)
    srv.start()
    idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(4)]
    try:
        assert wait_until(lambda: srv.open_connections == 4, 2)
        t0 = time.monotonic()
        code, _, body = request(srv.port, "GET", "/status", auth(srv), timeout=3)
        assert code == 503 and "busy" in json_error(body) and time.monotonic() - t0 < 1.5
        for s in idle:
            s.close()
        assert wait_until(lambda: request(srv.port, "GET", "/status", auth(srv), timeout=3)[0] == 200, 3)
    finally:
        for s in idle:
            s.close()
        srv.close()


def test_200_concurrent_status_requests_are_all_answered(control):
    srv, _ = control

    def one(_: int) -> tuple[int, float]:
        t = time.monotonic()
        return request(srv.port, "GET", "/status", auth(srv), timeout=10)[0], time.monotonic() - t

    barrier_start = time.monotonic()
    with ThreadPoolExecutor(max_workers=200) as pool:
        results = list(pool.map(one, range(200)))
    wall = time.monotonic() - barrier_start
    codes = [c for c, _ in results]
    print(f"\n200 concurrent GET /status: {wall:.2f} s wall, slowest {max(t for _, t in results):.2f} s, "
          f"codes {sorted(set(codes))}")
    assert codes == [200] * 200
    assert wall < 15


def test_preview_caps_viewers_and_drops_one_that_stops_reading(mjpeg):
    streams = []
    try:
        for _ in range(MAX_VIEWERS):
            conn = http.client.HTTPConnection("127.0.0.1", mjpeg.port, timeout=5)
            conn.request("GET", "/stream")
            assert conn.getresponse().status == 200
            streams.append(conn)
        code, _, body = request(mjpeg.port, "GET", "/stream")
        assert code == 503 and "too many preview viewers" in json_error(body)
        for conn in streams:
            conn.close()
        streams.clear()
        assert wait_until(lambda: request(mjpeg.port, "GET", "/frame.jpg")[0] == 200
                          and mjpeg.status()["connections"] == 0, 5)

        # A viewer that never reads: once the buffers are full, a write waits 1 s and the viewer is dropped.
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.settimeout(5)
        stalled.connect(("127.0.0.1", mjpeg.port))
        stalled.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        streams.append(stalled)
        rng = np.random.default_rng(0)
        noisy = [Frame(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), i) for i in range(4)]
        t0 = time.monotonic()
        while mjpeg.status()["connections"] and time.monotonic() - t0 < 20:
            mjpeg.write(noisy[int(time.monotonic() * 30) % 4])
            time.sleep(0.03)
        print(f"\nstalled viewer dropped after {time.monotonic() - t0:.1f} s of frames")
        assert mjpeg.status()["connections"] == 0
        assert request(mjpeg.port, "GET", "/frame.jpg")[0] == 200
    finally:
        for s in streams:
            s.close()


def test_clients_that_leave_early_are_quiet(control, mjpeg, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    srv, _ = control
    for port, req in [(srv.port, f"GET /status HTTP/1.1\r\nAuthorization: Bearer {srv.token}\r\n\r\n"),
                      (mjpeg.port, "GET /stream HTTP/1.1\r\n\r\n"), (mjpeg.port, "GET /frame.jpg HTTP/1.1\r\n\r\n")]:
        for _ in range(10):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
            s.sendall(req.encode())
            s.close()
    for _ in range(20):
        mjpeg.write(Frame(np.full((48, 64, 3), 9, np.uint8), 1))
        time.sleep(0.02)
    assert wait_until(lambda: srv.open_connections == 0 and mjpeg.status()["connections"] == 0, 5)
    assert "Traceback" not in caplog.text + capsys.readouterr().err
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "preview at" not in r.getMessage()]


# --- bounded fuzz --------------------------------------------------------------------------
METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT", "FOO", "get", "G\x01T", ""]
PATHS = ["/status", "/profiles", "/switch", "/stop", "/", "/status/", "/status?x=1", "/nope", "*", "//",
         "http://evil.example/status", "/%00", "/..%2f..%2fetc", "/switch\x7f", "/" + "a" * 3000]
VERSIONS = ["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/0.9", "HTTP/1.x", "", "HTTP/1.1 extra"]


def _fuzz_name(rng: random.Random, avoid: set[str]) -> object:
    name = rng.choice([
        "tiny", "", " ", "no-such", "ti\x00ny", "\x1b[2J", "/abs/tiny.toml", "tiny.toml", "..", "../x", "a\\b",
        "x" * rng.randint(90, 5000), "\ud800", "\u202etxt", "名前", "tiny\n", "\t",
    ])
    if rng.random() < 0.2:
        return rng.choice([None, 1, 1.5, True, [], {}, ["tiny"], {"a": 1}])
    return name + "-fuzz" if name.strip() in avoid else name  # the server strips names


def _fuzz_body(rng: random.Random, avoid: set[str]) -> bytes:
    kind = rng.random()
    if kind < 0.35:
        return json.dumps({"profile": _fuzz_name(rng, avoid), rng.choice(["x", "profile "]): 1}).encode()
    if kind < 0.55:
        depth = rng.choice([1, 10, 500, 999, 1000, 1001, 3000, 6000])
        o, c = rng.choice([("[", "]"), ('{"a":', "}"), ('{"profile":', "}")])
        return (o * depth + "1" + c * depth).encode()
    if kind < 0.7:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
    if kind < 0.8:
        return rng.choice([b"{", b"[1,2]", b"null", b'"s"', b"1e999999", b"9" * 5000, b'{"profile": "\\ud800"}',
                           b"\xef\xbb\xbf{}", b'{"profile": "tiny", "profile": 1}'])
    return b""


def _fuzz_request(rng: random.Random, port: int, token: str, avoid: set[str], allow_stop: bool) -> bytes:
    if rng.random() < 0.4:  # a real route, so that a good share gets past the checks to the daemon
        method, path = rng.choice([("GET", "/status"), ("GET", "/profiles"), ("POST", "/switch")])
    else:
        method, path = rng.choice(METHODS), rng.choice(PATHS)
    if not allow_stop and path.startswith("/stop"):
        path = "/status"
    version = rng.choice(VERSIONS) if rng.random() < 0.15 else "HTTP/1.1"
    body = _fuzz_body(rng, avoid) if rng.random() < 0.7 else b""
    headers: list[str] = []
    host = rng.random()
    if host < 0.6:
        headers.append(f"Host: 127.0.0.1:{port}")
    elif host < 0.8:
        headers.append("Host: " + rng.choice(["evil.example", f"localhost:{port}", f"[::1]:{port}", "", f"x:{port}"]))
    elif host < 0.85:
        headers += [f"Host: 127.0.0.1:{port}", "Host: evil.example"]
    if rng.random() < 0.2:
        headers.append("Origin: " + rng.choice(["null", "http://evil.example", f"http://127.0.0.1:{port}", "", "\x01"]))
    a = rng.random()
    if a < 0.7:
        headers.append(f"Authorization: Bearer {token}")
    elif a < 0.85:
        headers.append("Authorization: " + rng.choice(["Bearer", "Bearer wrong", "Basic abc", "bearer  " + token,
                                                       "\xff"]))
    cl = rng.random()
    if cl < 0.8:
        headers.append(f"Content-Length: {len(body)}")
    elif cl < 0.9:
        headers.append("Content-Length: " + rng.choice(["-1", "abc", "", "1e3", "99999999", "0x10",
                                                        str(len(body) + 2**40)]))
    elif cl < 0.91:
        headers.append(f"Content-Length: {len(body) + 5}")  # a short body: answered after the server's timeout
    if rng.random() < 0.15:
        headers.append(rng.choice(["Connection: keep-alive", "Transfer-Encoding: chunked", "Expect: 100-continue",
                                   "X-Junk: " + "j" * rng.randint(1, 9000), "no colon here", ": empty name",
                                   "Content-Type: application/json; charset=latin1"]))
    if rng.random() < 0.02:
        headers += [f"X-{i}: {i}" for i in range(rng.randint(90, 120))]
    line = f"{method} {path} {version}".rstrip()
    head = (line + "\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode("utf-8", "surrogateescape")
    return head + body


def fuzz(port: int, token: str, *, count: int | None = None, seconds: float | None = None, workers: int = 6,
         seed: int = 13, avoid: set[str] = frozenset(), allow_stop: bool = True, server_timeout: float = 1.0) -> dict:
    """Random requests from `workers` threads until `count` are done or `seconds` have passed; each must be
    answered within the server's socket timeout (a short body waits that long) plus 3 s."""
    rng_lock, rng = threading.Lock(), random.Random(seed)
    codes: dict[object, int] = {}
    slowest = [0.0]
    done = [0]
    deadline = time.monotonic() + seconds if seconds else None

    def worker() -> None:
        while True:
            with rng_lock:
                if (count is not None and done[0] >= count) or (deadline and time.monotonic() > deadline):
                    return
                done[0] += 1
                data = _fuzz_request(rng, port, token, set(avoid), allow_stop)
            t = time.monotonic()
            try:
                code, _ = exchange(port, data, timeout=server_timeout + 3)
            except ConnectionResetError:
                code = "reset"  # refused: the server closed with bytes of ours unread
            except TimeoutError:
                code = "timeout"
            with rng_lock:
                codes[code] = codes.get(code, 0) + 1
                slowest[0] = max(slowest[0], time.monotonic() - t)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join((seconds or 120) + 30)
    assert not any(t.is_alive() for t in threads), "fuzz workers hung"
    return {"requests": done[0], "codes": codes, "slowest_s": round(slowest[0], 2)}


def _assert_fuzz_clean(result: dict, caplog) -> None:
    codes = result["codes"]
    print(f"\nfuzz: {result}")
    assert "timeout" not in codes and None not in codes, result
    assert not [c for c in codes if isinstance(c, int) and c >= 500], result
    assert codes.get("reset", 0) <= result["requests"] * 0.02, result
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_fuzz_against_the_control_api_no_5xx_no_hang_no_traceback(control, caplog):
    caplog.set_level(logging.DEBUG, logger="l2d_obs")
    srv, daemon = control
    t0 = time.monotonic()
    result = fuzz(srv.port, srv.token, count=2000)
    result["wall_s"] = round(time.monotonic() - t0, 1)
    _assert_fuzz_clean(result, caplog)
    assert result["requests"] == 2000 and result["codes"].get(200, 0) > 50
    assert request(srv.port, "GET", "/status", auth(srv))[0] == 200
    assert wait_until(lambda: srv.open_connections == 0, 3)
    assert set(daemon.switched) <= KNOWN_PROFILES


@pytest.mark.slow
def test_fuzz_against_a_running_daemon_keeps_its_output_rate(caplog):
    import torch

    from l2d_obs.daemon import Daemon, DaemonConfig
    from l2d_obs.profiles import available_profiles
    from l2d_obs.sinks.base import NullSink
    from l2d_obs.sources.pattern import PatternSource
    from tests.daemon.daemon_helpers import real_engine_factory, run_in_thread, tiny

    caplog.set_level(logging.INFO, logger="l2d_obs")
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    sink = NullSink()
    # 6 fps: inside what the tiny engine does on one busy core (~9-13 fps), so the rate is the source's
    # unless the fuzz takes the engine's time.
    d = Daemon(tiny(), PatternSource(64, 64, 6), [sink], real_engine_factory, DaemonConfig(control_port=0))
    thread, result = run_in_thread(d.run)
    try:
        assert wait_until(lambda: d.phase == "running" and d.stats.frames_published >= 6, 60), d.status()
        time.sleep(2)  # past the warm-up

        def rate(seconds: float) -> float:
            n0, t0 = d.stats.frames_published, time.monotonic()
            time.sleep(seconds)
            return (d.stats.frames_published - n0) / (time.monotonic() - t0)

        before = rate(5.0)
        n0, t0 = d.stats.frames_published, time.monotonic()
        fuzzed = fuzz(d.control.port, d.control.token, seconds=10.0, workers=4, avoid=set(available_profiles()),
                      allow_stop=False, server_timeout=server_mod.IO_TIMEOUT_S)
        during = (d.stats.frames_published - n0) / (time.monotonic() - t0)
        st = d.status()
        print(f"\nframes published per second: before {before:.2f}, during the fuzz {during:.2f}; "
              f"fps_out {st['fps_out']}, engine {st['engine_ms']} ms")
        _assert_fuzz_clean(fuzzed, caplog)
        assert d.state == "running" and "error" not in result
        assert abs(during - before) <= 0.10 * before, (before, during)
    finally:
        d.stop()
        thread.join(10)
        torch.set_num_threads(threads_before)
    assert not thread.is_alive() and "error" not in result, result.get("error")


# --- the control file ------------------------------------------------------------------------
def test_control_file_replaces_a_planted_link_instead_of_following_it(tmp_path):
    state = Path(os.environ["L2D_STATE_DIR"])
    state.mkdir(mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (state / "control.json").symlink_to(victim)
    srv = ControlServer(FakeDaemon(), port=0)
    srv.start()
    try:
        assert victim.read_text() == "precious"
        assert not srv.path.is_symlink() and stat.S_IMODE(srv.path.lstat().st_mode) == 0o600
        assert json.loads(srv.path.read_text())["token"] == srv.token
        assert [p.name for p in state.iterdir()] == ["control.json"]  # no temp file left behind
    finally:
        srv.close()


def test_control_file_temp_name_never_follows_a_link(tmp_path, monkeypatch):
    state = Path(os.environ["L2D_STATE_DIR"])
    state.mkdir(mode=0o700)
    planted = state / ".control.json.guess"
    target = tmp_path / "target"
    planted.symlink_to(target)  # dangling: a follow would create it
    monkeypatch.setattr(server_mod, "_temp_path", lambda path: planted)
    srv = ControlServer(FakeDaemon(), port=0)
    with pytest.raises(ControlError, match="cannot write the control file .*File exists"):
        srv.start()
    srv.close()
    assert not target.exists() and planted.is_symlink() and not (state / "control.json").exists()


def test_state_folder_is_made_private(tmp_path):
    state = Path(os.environ["L2D_STATE_DIR"])
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    srv = ControlServer(FakeDaemon(), port=0)
    srv.start()
    srv.close()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the folder to another user")
def test_state_folder_of_another_user_is_refused():
    state = Path(os.environ["L2D_STATE_DIR"])
    state.mkdir(mode=0o700)
    os.chown(state, 65534, 65534)
    srv = ControlServer(FakeDaemon(), port=0)
    with pytest.raises(ControlError, match="belongs to another user; set L2D_STATE_DIR"):
        srv.start()
    srv.close()
    assert not (state / "control.json").exists()
