"""A small synchronous obs-websocket 5.x client on websocket-client.

Why not obs-websocket-py's ``obsws`` (measured against a real OBS in docs/obs-client.md,
benchmarks/obs_client_bench.py). Configured as far as its API allows, it is still 17 % slower per request:
every reply crosses from its receive thread to the caller. JPEG screenshots at 512x512 are 8-19 % fewer per
second, with about twice the client CPU, because it formats every whole reply into a debug string even
with logging off. Version 1.0 has no raw mode, so OBS's error text survives only through its internal
tables. Its login turns every close code into "password may be incorrect" and leaves the socket open, and
its connect has no timeout. As shipped, it also checks UTF-8 in pure Python: 72 ms of CPU per noise JPEG.
So this client sends one request at a time on its own connection, subscribes to no events unless asked,
and raises OBSRequestError with OBS's own comment when a request fails. The password is used for the
handshake and never stored in messages or logs.

A wrong password shows as obs-websocket closing the connection after Identify with close code 4009
(AuthenticationFailed; websocket-client's ``recv`` would return "" for it, so the handshake reads the close
frame itself): ``connect`` raises ``OBSAuthError``, whose ``state`` ("auth failed") is what a status shows
while it lasts. Other close codes during login are named too. The source, the output and the event
listener each hold a connection; ``report_auth_failure`` says a refused password once per address (one
WARNING line, however many of them hit it), and the next successful login says it is accepted again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import socket
import struct
import threading
from typing import Any

import websocket

from .errors import OBSConnectionError

log = logging.getLogger(__name__)

_OP_HELLO, _OP_IDENTIFY, _OP_IDENTIFIED, _OP_EVENT, _OP_REQUEST, _OP_RESPONSE = 0, 1, 2, 5, 6, 7

# obs-websocket 5 event subscription bits (EventSubscription enum).
EVENTS_GENERAL = 1 << 0  # CustomEvent among others
EVENTS_SCENES = 1 << 2  # CurrentProgramSceneChanged
EVENTS_INPUTS = 1 << 3  # InputRemoved, InputNameChanged
EVENTS_SCENE_ITEMS = 1 << 7  # SceneItemCreated/Removed/ListReindexed/EnableStateChanged
EVENTS_SCENE_ITEM_TRANSFORMS = 1 << 19  # SceneItemTransformChanged (high-volume: only when asked for)


# obs-websocket 5 WebSocketCloseCode values a login can end with.
CLOSE_AUTHENTICATION_FAILED = 4009
_CLOSE_NAMES = {
    4000: "unknown reason", 4002: "message decode error", 4003: "missing data field", 4004: "invalid data field type",
    4005: "invalid data field value", 4006: "unknown op code", 4007: "not identified", 4008: "already identified",
    4009: "authentication failed", 4010: "unsupported RPC version", 4011: "session invalidated",
    4012: "unsupported feature",
}
_PASSWORD_HELP = ("set L2D_OBS_PASSWORD or [obs] password in the config file to the one in OBS > Tools > "
                  "WebSocket Server Settings, then start l2d-obs again")


class OBSAuthError(OBSConnectionError):
    """OBS refused the password (obs-websocket close code 4009), or wants one and none is set."""

    state = "auth failed"  # what a status shows while this lasts


_auth_lock = threading.Lock()
_auth_failing: set[str] = set()  # addresses whose refusal has been reported and not yet cleared


def report_auth_failure(exc: OBSAuthError, address: str) -> None:
    """Log ``exc`` at WARNING, once per address until a login there succeeds again."""
    with _auth_lock:
        if address in _auth_failing:
            return
        _auth_failing.add(address)
    log.warning("%s", exc)


def _auth_accepted(address: str) -> None:
    with _auth_lock:
        if address not in _auth_failing:
            return
        _auth_failing.discard(address)
    log.warning("OBS at %s accepted the password again", address)


def _closed_during_login(address: str, frame: bytes) -> OBSConnectionError:
    """The error for a close frame OBS sent instead of Identified."""
    code = struct.unpack("!H", frame[:2])[0] if len(frame) >= 2 else None
    if code == CLOSE_AUTHENTICATION_FAILED:
        return OBSAuthError(f"OBS at {address} refused the password (obs-websocket authentication failed): "
                            f"{_PASSWORD_HELP}")
    reason = " ".join(frame[2:].decode("utf-8", "replace").split())[:200]
    what = f"obs-websocket close code {code}: {_CLOSE_NAMES.get(code, 'unknown')}" if code else "no close code"
    return OBSConnectionError(f"OBS at {address} closed the connection during login ({what}"
                              f"{'; ' + reason if reason else ''}); is it obs-websocket 5 (OBS 28 or newer)?")


class OBSRequestError(OBSConnectionError):
    """OBS answered a request with a failure (the connection itself is fine)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _auth_string(password: str, salt: str, challenge: str) -> str:
    secret = base64.b64encode(hashlib.sha256((password + salt).encode()).digest())
    return base64.b64encode(hashlib.sha256(secret + challenge.encode()).digest()).decode()


def _discard(ws: websocket.WebSocket) -> None:
    """Close a connection that failed to log in (after a close frame ``close`` alone leaves the socket open)."""
    ws.close(timeout=0.5)
    ws.shutdown()


class OBSClient:
    """One authenticated obs-websocket connection. Thread-safe (requests are serialised)."""

    def __init__(self, host: str, port: int, password: str | None, timeout: float = 5.0, event_subscriptions: int = 0) -> None:
        self.host = host
        self.event_subscriptions = event_subscriptions  # 0: requests only; else read events with next_event()
        self.port = port
        self._password = password or ""
        self.timeout = timeout
        self._ws: websocket.WebSocket | None = None
        self._lock = threading.Lock()
        self._next_id = 0

    def __repr__(self) -> str:  # never show the password
        return f"OBSClient({self.host}:{self.port})"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._ws.connected

    def connect(self) -> "OBSClient":
        ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=False)
        try:
            ws.connect(f"ws://{self.host}:{self.port}", timeout=self.timeout)
            hello = json.loads(ws.recv())
            if hello.get("op") != _OP_HELLO:
                raise OBSConnectionError(f"{self.address} is not an obs-websocket 5 server; check L2D_OBS_PORT")
            identify: dict[str, Any] = {"rpcVersion": 1, "eventSubscriptions": self.event_subscriptions}
            auth = hello["d"].get("authentication")
            if auth:
                if not self._password:
                    raise OBSAuthError(f"OBS at {self.address} requires a password and none is set: {_PASSWORD_HELP}")
                identify["authentication"] = _auth_string(self._password, auth["salt"], auth["challenge"])
            ws.send(json.dumps({"op": _OP_IDENTIFY, "d": identify}))
            opcode, raw = ws.recv_data()  # a wrong password: a close frame with code 4009
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise _closed_during_login(self.address, raw)
            reply = json.loads(raw)
            if reply.get("op") != _OP_IDENTIFIED:
                raise OBSConnectionError(f"OBS at {self.address} refused the handshake")
        except websocket.WebSocketConnectionClosedException:
            _discard(ws)
            raise OBSConnectionError(
                f"OBS at {self.address} dropped the connection during login; is it obs-websocket 5 on that port? "
                "Try again, or pass --wait"
            ) from None
        except (OSError, websocket.WebSocketException, ValueError, KeyError) as exc:
            _discard(ws)
            raise OBSConnectionError(
                f"cannot reach OBS at {self.address} ({type(exc).__name__}: {exc}); start OBS and enable "
                "Tools > WebSocket Server Settings, or pass --wait"
            ) from None
        except OBSConnectionError:
            _discard(ws)
            raise
        self._ws = ws
        log.info("connected to OBS at %s", self.address)
        _auth_accepted(self.address)
        return self

    def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close(timeout=0.5)
            except (OSError, websocket.WebSocketException):
                pass

    def __enter__(self) -> "OBSClient":
        return self if self.connected else self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, request_type: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one request and return its responseData. Raises OBSRequestError or OBSConnectionError."""
        with self._lock:
            ws = self._ws
            if ws is None:
                raise OBSConnectionError(f"not connected to OBS at {self.address}")
            self._next_id += 1
            rid = str(self._next_id)
            msg = {"op": _OP_REQUEST, "d": {"requestType": request_type, "requestId": rid, "requestData": data or {}}}
            try:
                ws.send(json.dumps(msg))
                while True:
                    reply = json.loads(ws.recv())
                    if reply.get("op") == _OP_RESPONSE and reply["d"].get("requestId") == rid:
                        break
            except (OSError, socket.timeout, websocket.WebSocketException, ValueError) as exc:
                self.close()
                raise OBSConnectionError(f"lost the connection to OBS at {self.address} ({type(exc).__name__})") from None
        status = reply["d"]["requestStatus"]
        if not status.get("result"):
            comment = status.get("comment") or "no reason given"
            raise OBSRequestError(f"OBS refused {request_type}: {comment} (code {status.get('code')})", status.get("code", 0))
        return reply["d"].get("responseData") or {}

    def next_event(self, timeout: float = 0.5) -> tuple[str, dict[str, Any]] | None:
        """The next event (type, data) on a connection opened with event_subscriptions, or None on timeout.

        Use a dedicated connection for events: ``request`` skips anything that is not its response.
        """
        ws = self._ws
        if ws is None:
            raise OBSConnectionError(f"not connected to OBS at {self.address}")
        ws.settimeout(timeout)
        try:
            raw = ws.recv()
        except (socket.timeout, websocket.WebSocketTimeoutException):
            return None
        except (OSError, websocket.WebSocketException) as exc:
            self.close()
            raise OBSConnectionError(f"lost the connection to OBS at {self.address} ({type(exc).__name__})") from None
        finally:
            if self._ws is not None:
                self._ws.settimeout(self.timeout)
        if not raw:
            self.close()
            raise OBSConnectionError(f"OBS at {self.address} closed the connection")
        try:
            message = json.loads(raw)
        except ValueError:
            return None
        if message.get("op") != _OP_EVENT:
            return None
        d = message.get("d", {})
        return str(d.get("eventType", "")), d.get("eventData") or {}
