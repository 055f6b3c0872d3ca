"""What the local HTTP servers (control API, MJPEG preview) share to stay safe and alive.

- ``Host`` must name this server (loopback names or the bound address, with or without its port) and an
  ``Origin``, when sent, must be this server's own: a page in the user's browser that rebinds its DNS
  name to 127.0.0.1 reaches the port but carries its own name, and is refused (DNS rebinding).
- Everything bounded: listen backlog, a socket timeout for request line, headers, body and every write
  (an idle or stalled peer is dropped), a cap on open connections (beyond it a quick 503).
- Every answer is JSON, including the base class's own refusals and methods nobody implements; a client
  that leaves early is a debug line, never a traceback.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
# A client that leaves, resets, or stops reading/writing until the socket timeout.
DISCONNECTS = (ConnectionError, TimeoutError)


class HTTPFailure(Exception):
    """A refusal with its HTTP code; the message becomes ``{"error": message}``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _names(bind: str) -> set[str]:
    return {*LOOPBACK_NAMES, f"[{bind}]" if ":" in bind else bind}


def allowed_hosts(bind: str, port: int) -> frozenset[str]:
    names = _names(bind)
    return frozenset(names | {f"{n}:{port}" for n in names})


def allowed_origins(bind: str, port: int) -> frozenset[str]:
    names = _names(bind)
    origins = {f"http://{n}:{port}" for n in names}
    if port == 80:  # a browser leaves the default port out of the origin
        origins |= {f"http://{n}" for n in names}
    return frozenset(origins)


def check_host_and_origin(headers: Message, bind: str, port: int) -> None:
    """Raise HTTPFailure unless Host (if any: HTTP/1.0 may omit it) and Origin (if any) are this server."""
    url = f"http://127.0.0.1:{port}/"
    hosts = headers.get_all("Host") or []
    if len(hosts) > 1:
        raise HTTPFailure(400, "more than one Host header")
    if hosts and hosts[0].strip().lower() not in allowed_hosts(bind, port):
        raise HTTPFailure(421, f"Host {hosts[0][:100]!r} is not this server; it answers only {url}")
    origins = headers.get_all("Origin") or []
    if len(origins) > 1 or (origins and origins[0].strip().lower() not in allowed_origins(bind, port)):
        raise HTTPFailure(403, f"cross-origin request refused (Origin {origins[0][:100]!r}); open {url} itself")


def json_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


class GuardedHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer with a backlog, a per-connection socket timeout and a connection cap."""

    daemon_threads = True
    block_on_close = False  # close() shuts the open connections down instead of waiting for them
    request_queue_size = 128
    # A full server waits this long for a free slot before refusing, so a burst of short requests
    # queues briefly instead of being turned away.
    slot_wait_s = 0.5

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *,
                 max_connections: int, timeout: float, name: str) -> None:
        self.io_timeout = timeout
        self.max_connections = max_connections
        self.label = name
        self._slots = threading.BoundedSemaphore(max_connections)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__(address, handler)

    @property
    def open_connections(self) -> int:
        with self._open_lock:
            return len(self._open)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(timeout=self.slot_wait_s):
            self._refuse_busy(request)
            return
        with self._open_lock:
            self._open.add(request)
        try:
            super().process_request(request, client_address)  # starts the connection's thread
        except BaseException:
            self._forget(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._forget(request)

    def _forget(self, request: socket.socket) -> None:
        with self._open_lock:
            if request not in self._open:
                return
            self._open.discard(request)
        self._slots.release()

    def _refuse_busy(self, request: socket.socket) -> None:
        body = json_bytes({"error": f"{self.label} is busy ({self.max_connections} connections open); try again"})
        head = (f"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n")
        try:
            request.setblocking(False)
            request.recv(65536)  # what the client sent already: closing with it unread would reset the reply
        except OSError:
            pass
        try:
            request.settimeout(0.2)
            request.sendall(head.encode() + body)
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, DISCONNECTS):
            log.debug("%s: client %s went away (%s)", self.label, client_address, type(exc).__name__)
        else:  # a bug in a handler: worth a traceback, and it never reaches the client
            log.error("%s: request from %s failed", self.label, client_address, exc_info=True)

    def start(self, thread_name: str) -> None:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close the listening socket, and cut every open connection."""
        if self._thread is not None:
            self.shutdown()
        self.server_close()
        with self._open_lock:
            open_now = list(self._open)
        for sock in open_now:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(2)


class GuardedHandler(BaseHTTPRequestHandler):
    """Checks Host/Origin and drains the body for every method, then calls ``respond(method, body)``."""

    server: GuardedHTTPServer
    server_version = "l2d-obs"
    # Not HTTP/0.9: a request line without a version still gets a status line and headers.
    default_request_version = "HTTP/1.0"
    max_body = 64 * 1024

    def respond(self, method: str, body: bytes) -> None:  # pragma: no cover - overridden
        raise HTTPFailure(404, "nothing here")

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        self.timeout = self.server.io_timeout  # StreamRequestHandler.setup applies it to the socket
        super().setup()

    def __getattr__(self, name: str) -> Any:
        # The base class looks up do_<METHOD> and answers 501 HTML when it is missing; route every
        # method, HEAD, OPTIONS and made-up ones included, to one place that answers JSON instead.
        if name.startswith("do_"):
            return self._guarded
        raise AttributeError(name)

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.request_version.startswith("HTTP/0."):  # its answers carry no status line
            self.request_version = "HTTP/1.0"
            self.send_error(400, "HTTP/0.x is not supported; use HTTP/1.1")
            return False
        return True

    def handle(self) -> None:
        try:
            super().handle()
        except DISCONNECTS as exc:
            self.close_connection = True
            log.debug("%s: client went away (%s)", self.server.label, type(exc).__name__)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("%s: " + format, self.server.label, *args)

    def _guarded(self) -> None:
        try:
            body = self._read_body()  # first, so a refusal does not leave unread bytes (a reset) behind
            check_host_and_origin(self.headers, *self.server.server_address[:2])
            self.respond(self.command, body)
        except HTTPFailure as exc:
            self.close_connection = True
            self.send_json(exc.code, {"error": str(exc)})

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise HTTPFailure(400, "bad Content-Length") from None
        if length < 0 or length > self.max_body:
            raise HTTPFailure(413, f"request body too large (max {self.max_body} bytes)")
        if not length:
            return b""
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            body = b""
        if len(body) < length:
            raise HTTPFailure(408, f"body shorter than its Content-Length ({length}); send the whole body")
        return body

    def send_json(self, code: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json_bytes(payload)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":  # a HEAD answer has the headers of the JSON body, not the body
            self.wfile.write(data)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The base class's refusals (bad request line, headers too long, HTTP/2.0, ...): JSON, and
        # never a 5xx for what the client sent.
        if code >= 500:
            code = 400
        self.close_connection = True
        text = message or self.responses.get(code, ("bad request",))[0]
        try:
            self.send_json(code, {"error": " ".join(str(text).split())})
        except DISCONNECTS:
            pass
