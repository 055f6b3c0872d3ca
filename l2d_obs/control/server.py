"""The local control API of a running daemon: HTTP/JSON on 127.0.0.1 with a bearer token.

At start the daemon generates a random token and writes ``{host, port, pid, token}`` with mode 0600 to
``$L2D_STATE_DIR/control.json`` in a folder kept at 0700; only processes of the same user can read it,
which is what makes the token meaningful. Host/Origin checks, timeouts and the connection cap come from
``httpguard``. Routes live in one table so later features (style switching from OBS events, ...) add
an entry instead of another server. Every failure answers 4xx/5xx with ``{"error": "<one line>"}``; a bad
request never reaches the daemon.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from ..paths import state_dir
from ..errors import ControlError, L2DError
from ..httpguard import GuardedHandler, GuardedHTTPServer, HTTPFailure

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_BODY = 64 * 1024
MAX_CONNECTIONS = 64
IO_TIMEOUT_S = 5.0  # request line, headers, body, and each reply write
MAX_NAME = 100

__all__ = ["ControlServer", "Controllable", "HTTPFailure", "ROUTES", "Route", "control_file"]


class Controllable(Protocol):
    def status(self) -> dict[str, Any]: ...
    def request_switch(self, name: str) -> dict[str, Any]: ...
    def set_bypass(self, on: bool) -> dict[str, Any]: ...
    def stop(self) -> None: ...


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


def _profile_name(body: dict[str, Any]) -> str:
    name = body.get("profile")
    if not isinstance(name, str) or not name.strip():
        raise HTTPFailure(400, 'body must be {"profile": "NAME"}')
    name = name.strip()
    if "/" in name or "\\" in name or name.lower().endswith(".toml"):
        from ..paths import user_profiles_dir

        raise HTTPFailure(400, f"switch takes a profile name, not a path; copy the file into {user_profiles_dir()} "
                               "and switch to its name (see GET /profiles)")
    if len(name) > MAX_NAME or not name.isprintable():
        raise HTTPFailure(400, f"a profile name is at most {MAX_NAME} printable characters; see GET /profiles")
    return name


def _switch(d: Controllable, body: dict) -> dict:
    return d.request_switch(_profile_name(body))


def _bypass(d: Controllable, body: dict) -> dict:
    on = body.get("on")
    if not isinstance(on, bool) or set(body) != {"on"}:
        raise HTTPFailure(400, 'body must be {"on": true} or {"on": false}')
    return d.set_bypass(on)


def _stop(d: Controllable, _: dict) -> dict:
    d.stop()
    return {"stopping": True}


ROUTES: list[Route] = [
    Route("GET", "/status", _status),
    Route("GET", "/profiles", _profiles),
    Route("POST", "/switch", _switch, takes_body=True),
    Route("POST", "/bypass", _bypass, takes_body=True),
    Route("POST", "/stop", _stop),
]


def control_file() -> Path:
    return state_dir() / "control.json"


def _parse(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body.decode("utf-8")) if body else {}
    except RecursionError:
        raise HTTPFailure(400, "body is not valid JSON: nested too deep") from None
    except ValueError as exc:  # also bad UTF-8 and integers too long to convert
        raise HTTPFailure(400, f"body is not valid JSON: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise HTTPFailure(400, "body must be a JSON object")
    return data


def _make_handler(server: "ControlServer") -> type[GuardedHandler]:
    class Handler(GuardedHandler):
        max_body = MAX_BODY

        def respond(self, method: str, body: bytes) -> None:
            headers: dict[str, str] = {}
            try:
                self._authorise()
                path = self.path.split("?", 1)[0].rstrip("/") or "/"
                routes = [r for r in ROUTES if r.path == path]
                if not routes:
                    raise HTTPFailure(404, f"no such endpoint {path[:100]}; try GET /status")
                route = next((r for r in routes if r.method == method), None)
                if route is None:
                    headers["Allow"] = ", ".join(r.method for r in routes)
                    raise HTTPFailure(405, f"{path} takes {headers['Allow']}, not {method[:20]}")
                payload = _parse(body) if route.takes_body else {}
                code, answer = 200, route.handler(server.daemon, payload)
            except HTTPFailure as exc:
                code, answer = exc.code, {"error": str(exc)}
            except L2DError as exc:
                code, answer = 400 if exc.exit_code == 2 else 409, {"error": str(exc)}
            except Exception as exc:  # noqa: BLE001 - never let a request take the daemon down
                log.exception("control request failed")
                code, answer = 500, {"error": f"internal error: {type(exc).__name__}"}
            self.send_json(code, answer, headers)  # outside the try: a client that left is handle()'s

        def _authorise(self) -> None:
            header = self.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), server.token.encode()):
                raise HTTPFailure(401, "missing or wrong token: send 'Authorization: Bearer <token from control.json>'")

    return Handler


def _private_folder(folder: Path) -> None:
    """Create the state folder 0700, or tighten one of ours that others can enter; refuse a stranger's."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = folder.stat()
    if st.st_uid != os.getuid():
        raise ControlError(f"state folder {folder} belongs to another user; set L2D_STATE_DIR to a folder of your own")
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(folder, 0o700)
        log.info("state folder %s was open to others; made it private (0700)", folder)


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(8)}")


class ControlServer:
    def __init__(self, daemon: Controllable, port: int = 0, path: Path | None = None, *,
                 timeout: float = IO_TIMEOUT_S, max_connections: int = MAX_CONNECTIONS) -> None:
        self.daemon = daemon
        self.token = secrets.token_urlsafe(32)
        self.path = path or control_file()
        try:
            self._httpd = GuardedHTTPServer((HOST, port), _make_handler(self), max_connections=max_connections,
                                            timeout=timeout, name="control API")
        except OSError as exc:
            raise ControlError(
                f"cannot open the control API on {HOST}:{port} ({exc.strerror}); is another daemon running? "
                "Try 'l2d-obs status' or --control-port"
            ) from None
        self.port = self._httpd.server_address[1]

    @property
    def open_connections(self) -> int:
        return self._httpd.open_connections

    def start(self) -> None:
        self._write_control_file()
        self._httpd.start("l2d-control")
        log.info("control API on http://%s:%d (token in %s)", HOST, self.port, self.path)

    def _write_control_file(self) -> None:
        tmp = _temp_path(self.path)
        try:
            _private_folder(self.path.parent)
            # A fresh unpredictable name, created exclusively and never through a link: nothing planted
            # in the folder can make us write the token elsewhere. 0600 from the start, not chmod'ed later.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ControlError(f"cannot write the control file {tmp} ({exc.strerror}); check the folder or set "
                               "L2D_STATE_DIR to a private one") from None
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"host": HOST, "port": self.port, "pid": os.getpid(), "token": self.token}, f)
            os.replace(tmp, self.path)  # a link at control.json is replaced itself, never followed
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def close(self) -> None:
        self._httpd.stop()
        try:  # remove the file only if it is still ours (another daemon may have started since)
            if json.loads(self.path.read_text()).get("pid") == os.getpid():
                self.path.unlink()
        except (OSError, ValueError):
            pass
