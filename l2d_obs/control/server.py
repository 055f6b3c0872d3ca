"""The local control API of a running daemon: HTTP/JSON on 127.0.0.1 with a bearer token.

At start the daemon generates a random token and writes ``{host, port, pid, token}`` with mode 0600 to
``$L2D_STATE_DIR/control.json``; only processes of the same user can read it, which is what makes the
token meaningful. Routes live in one table so later features (style switching from OBS events, ...) add
an entry instead of another server. Every failure answers 4xx/5xx with ``{"error": "<one line>"}``; a bad
request never reaches the daemon.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Protocol

from ..config import state_dir
from ..errors import ControlError, L2DError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_BODY = 64 * 1024


class Controllable(Protocol):
    def status(self) -> dict[str, Any]: ...
    def request_switch(self, name: str) -> dict[str, Any]: ...
    def stop(self) -> None: ...


class HTTPFailure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Callable[[Controllable, dict[str, Any]], dict[str, Any]]
    takes_body: bool = False


def _status(d: Controllable, _: dict) -> dict:
    return d.status()


def _profiles(d: Controllable, _: dict) -> dict:
    from ..profiles import available_profiles

    return {"profiles": list(available_profiles()), "active": d.status().get("profile")}


def _switch(d: Controllable, body: dict) -> dict:
    name = body.get("profile")
    if not isinstance(name, str) or not name.strip():
        raise HTTPFailure(400, 'body must be {"profile": "NAME"}')
    return d.request_switch(name.strip())


def _stop(d: Controllable, _: dict) -> dict:
    d.stop()
    return {"stopping": True}


ROUTES: list[Route] = [
    Route("GET", "/status", _status),
    Route("GET", "/profiles", _profiles),
    Route("POST", "/switch", _switch, takes_body=True),
    Route("POST", "/stop", _stop),
]


def control_file() -> Path:
    return state_dir() / "control.json"


def _make_handler(server: "ControlServer") -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "l2d-obs"
        sys_version = ""

        def log_message(self, fmt: str, *args: object) -> None:
            log.debug("control: " + fmt, *args)

        def do_GET(self) -> None:  # noqa: N802
            self._handle("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._handle("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._handle("PUT")

        def do_DELETE(self) -> None:  # noqa: N802
            self._handle("DELETE")

        def _handle(self, method: str) -> None:
            try:
                body = self._read_body()  # always drain it, so the connection stays usable
                self._authorise()
                path = self.path.split("?", 1)[0].rstrip("/") or "/"
                routes = [r for r in ROUTES if r.path == path]
                if not routes:
                    raise HTTPFailure(404, f"no such endpoint {path}; try GET /status")
                route = next((r for r in routes if r.method == method), None)
                if route is None:
                    raise HTTPFailure(405, f"{path} takes {', '.join(r.method for r in routes)}, not {method}")
                payload = self._parse(body) if route.takes_body else {}
                self._reply(200, route.handler(server.daemon, payload))
            except HTTPFailure as exc:
                self._reply(exc.code, {"error": str(exc)})
            except L2DError as exc:
                self._reply(400 if exc.exit_code == 2 else 409, {"error": str(exc)})
            except Exception as exc:  # noqa: BLE001 - never let a request take the daemon down
                log.exception("control request failed")
                self._reply(500, {"error": f"internal error: {type(exc).__name__}"})

        def _read_body(self) -> bytes:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise HTTPFailure(400, "bad Content-Length") from None
            if length < 0 or length > MAX_BODY:
                self.close_connection = True
                raise HTTPFailure(413, f"request body too large (max {MAX_BODY} bytes)")
            return self.rfile.read(length) if length else b""

        def _authorise(self) -> None:
            header = self.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), server.token.encode()):
                raise HTTPFailure(401, "missing or wrong token: send 'Authorization: Bearer <token from control.json>'")

        @staticmethod
        def _parse(body: bytes) -> dict[str, Any]:
            try:
                data = json.loads(body.decode("utf-8")) if body else {}
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise HTTPFailure(400, f"body is not valid JSON: {exc}") from None
            if not isinstance(data, dict):
                raise HTTPFailure(400, "body must be a JSON object")
            return data

        def _reply(self, code: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


class ControlServer:
    def __init__(self, daemon: Controllable, port: int = 0, path: Path | None = None) -> None:
        self.daemon = daemon
        self.token = secrets.token_urlsafe(32)
        self.path = path or control_file()
        try:
            self._httpd = ThreadingHTTPServer((HOST, port), _make_handler(self))
        except OSError as exc:
            raise ControlError(
                f"cannot open the control API on {HOST}:{port} ({exc.strerror}); is another daemon running? "
                "Try 'l2d-obs status' or --control-port"
            ) from None
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._write_control_file()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="l2d-control", daemon=True)
        self._thread.start()
        log.info("control API on http://%s:%d (token in %s)", HOST, self.port, self.path)

    def _write_control_file(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        # Created 0600 from the start (not chmod'ed afterwards), so the token is never readable by others.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"host": HOST, "port": self.port, "pid": os.getpid(), "token": self.token}, f)
        os.replace(tmp, self.path)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(2)
        try:  # remove the file only if it is still ours (another daemon may have started since)
            if json.loads(self.path.read_text()).get("pid") == os.getpid():
                self.path.unlink()
        except (OSError, ValueError):
            pass
