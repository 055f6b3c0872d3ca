"""A small synchronous obs-websocket 5.x client.

Why not obswebsocket's ``obsws``: it loses the error text of failed requests, runs callbacks on its receive
thread, and lets websocket-client validate UTF-8 in pure Python, which caps 512x512 screenshots at ~23/s
(DESIGN §6; ~75/s without). Sources and sinks only need request/response, so this client sends one request
at a time on its own connection, subscribes to no events, and raises OBSConnectionError with OBS's own
comment when a request fails. The password is used for the handshake and never stored in messages or logs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import socket
import threading
from typing import Any

import websocket

from .errors import OBSConnectionError

log = logging.getLogger(__name__)

_OP_HELLO, _OP_IDENTIFY, _OP_IDENTIFIED, _OP_EVENT, _OP_REQUEST, _OP_RESPONSE = 0, 1, 2, 5, 6, 7

# obs-websocket 5 event subscription bits (EventSubscription enum).
EVENTS_GENERAL = 1 << 0  # CustomEvent among others
EVENTS_SCENES = 1 << 2  # CurrentProgramSceneChanged
EVENTS_SCENE_ITEMS = 1 << 7  # SceneItemEnableStateChanged


class OBSRequestError(OBSConnectionError):
    """OBS answered a request with a failure (the connection itself is fine)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _auth_string(password: str, salt: str, challenge: str) -> str:
    secret = base64.b64encode(hashlib.sha256((password + salt).encode()).digest())
    return base64.b64encode(hashlib.sha256(secret + challenge.encode()).digest()).decode()


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
                    raise OBSConnectionError(
                        f"OBS at {self.address} requires a password; set L2D_OBS_PASSWORD or obs.password in the config file"
                    )
                identify["authentication"] = _auth_string(self._password, auth["salt"], auth["challenge"])
            ws.send(json.dumps({"op": _OP_IDENTIFY, "d": identify}))
            raw = ws.recv()
            if not raw:  # obs-websocket closes the connection (code 4009) when authentication fails
                raise websocket.WebSocketConnectionClosedException()
            reply = json.loads(raw)
            if reply.get("op") != _OP_IDENTIFIED:
                raise OBSConnectionError(f"OBS at {self.address} refused the handshake")
        except websocket.WebSocketConnectionClosedException:
            ws.close()
            # obs-websocket closes the socket (code 4009) on a wrong password.
            raise OBSConnectionError(
                f"OBS at {self.address} closed the connection during login: wrong password? Check L2D_OBS_PASSWORD"
            ) from None
        except (OSError, websocket.WebSocketException, ValueError, KeyError) as exc:
            ws.close()
            raise OBSConnectionError(
                f"cannot reach OBS at {self.address} ({type(exc).__name__}: {exc}); start OBS and enable "
                "Tools > WebSocket Server Settings, or pass --wait"
            ) from None
        except OBSConnectionError:
            ws.close()
            raise
        self._ws = ws
        log.info("connected to OBS at %s", self.address)
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
