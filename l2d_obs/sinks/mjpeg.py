"""A browser preview: multipart MJPEG over HTTP on 127.0.0.1 (``mjpeg[:PORT]``, default 8090).

``/`` is a page with the stream, ``/stream`` the multipart stream, ``/frame.jpg`` the latest frame.
Each frame is JPEG-encoded once however many viewers there are; a slow viewer only misses frames, and
one that stops reading is dropped. Host/Origin checks, timeouts and caps come from ``httpguard``.
"""

from __future__ import annotations

import logging
import threading

from ..errors import SinkError
from ..frames import Frame
from ..httpguard import GuardedHandler, GuardedHTTPServer, HTTPFailure
from .base import Sink, frame_jpeg

log = logging.getLogger(__name__)

DEFAULT_PORT = 8090
MAX_VIEWERS = 8
MAX_CONNECTIONS = 16  # the viewers plus page and snapshot requests
IO_TIMEOUT_S = 5.0
_BOUNDARY = "l2dframe"
_PAGE = b"<!doctype html><title>l2d-obs preview</title><body style='margin:0;background:#111'>" \
        b"<img src='/stream' style='max-width:100vw;max-height:100vh'></body>"


class _LatestJpeg:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.jpeg: bytes | None = None
        self.seq = 0
        self.closed = False

    def publish(self, jpeg: bytes) -> None:
        with self.cond:
            self.jpeg, self.seq = jpeg, self.seq + 1
            self.cond.notify_all()

    def next_after(self, seq: int, timeout: float) -> tuple[int, bytes | None]:
        with self.cond:
            self.cond.wait_for(lambda: self.seq != seq or self.closed, timeout)
            return self.seq, self.jpeg


def _handler(latest: _LatestJpeg, viewers: threading.BoundedSemaphore) -> type[GuardedHandler]:
    class Handler(GuardedHandler):
        max_body = 4096  # nothing here takes a body; a small one is drained and ignored

        def respond(self, method: str, body: bytes) -> None:
            if method != "GET":
                raise HTTPFailure(405, f"the preview takes GET, not {method[:20]}")
            path = self.path.split("?", 1)[0]
            if path == "/":
                self._send(200, "text/html", _PAGE)
            elif path == "/frame.jpg":
                jpeg = latest.jpeg
                if jpeg is None:
                    raise HTTPFailure(503, "no frame yet; the daemon is still starting")
                self._send(200, "image/jpeg", jpeg)
            elif path == "/stream":
                if not viewers.acquire(blocking=False):
                    raise HTTPFailure(503, f"too many preview viewers (max {MAX_VIEWERS}); close one and reload")
                try:
                    self._stream()
                finally:
                    viewers.release()
            else:
                raise HTTPFailure(404, f"no such page {path[:100]}; open / or /stream")

        def _send(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _stream(self) -> None:
            # Every write has the socket timeout: a viewer that stops reading is dropped once the
            # kernel buffers are full and a write has waited that long (handle() logs it at debug).
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            seq = 0
            while not latest.closed:
                seq, jpeg = latest.next_after(seq, timeout=1.0)
                if jpeg is None or latest.closed:
                    continue
                head = f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                self.wfile.write(head.encode() + jpeg + b"\r\n")

    return Handler


class MJPEGSink(Sink):
    def __init__(self, port: int = DEFAULT_PORT, quality: int = 85, *, timeout: float = IO_TIMEOUT_S) -> None:
        self.port, self.quality, self.timeout = port, quality, timeout
        self._latest = _LatestJpeg()
        self._server: GuardedHTTPServer | None = None

    @property
    def name(self) -> str:
        return f"mjpeg:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def open(self, width: int, height: int, fps: float) -> None:
        self._latest = _LatestJpeg()
        try:
            handler = _handler(self._latest, threading.BoundedSemaphore(MAX_VIEWERS))
            server = GuardedHTTPServer(("127.0.0.1", self.port), handler, max_connections=MAX_CONNECTIONS,
                                       timeout=self.timeout, name="preview")
        except OSError as exc:
            raise SinkError(f"cannot serve the preview on 127.0.0.1:{self.port} ({exc.strerror}); pick another port: mjpeg:PORT") from None
        self.port = server.server_address[1]
        self._server = server
        server.start("mjpeg-http")
        log.warning("preview at %s", self.url)

    def write(self, frame: Frame) -> None:
        self._latest.publish(frame_jpeg(frame, self.quality))

    def close(self) -> None:
        server, self._server = self._server, None
        with self._latest.cond:
            self._latest.closed = True
            self._latest.cond.notify_all()
        if server is not None:
            server.stop()

    def status(self) -> dict:
        server = self._server
        return {"url": self.url, "connections": server.open_connections if server is not None else 0}
