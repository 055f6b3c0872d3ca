"""A browser preview: multipart MJPEG over HTTP on 127.0.0.1 (``mjpeg[:PORT]``, default 8090).

``/`` is a page with the stream, ``/stream`` the multipart stream, ``/frame.jpg`` the latest frame.
Each frame is JPEG-encoded once however many viewers there are; a slow viewer only misses frames.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..errors import SinkError
from ..frames import Frame
from .base import Sink, encode_jpeg

log = logging.getLogger(__name__)

DEFAULT_PORT = 8090
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


def _handler(latest: _LatestJpeg) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: object) -> None:
            log.debug("mjpeg: " + fmt, *args)

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            path = self.path.split("?", 1)[0]
            if path == "/":
                self._send(200, "text/html", _PAGE)
            elif path == "/frame.jpg":
                if latest.jpeg is None:
                    self._send(503, "text/plain", b"no frame yet\n")
                else:
                    self._send(200, "image/jpeg", latest.jpeg)
            elif path == "/stream":
                self._stream()
            else:
                self._send(404, "text/plain", b"not found\n")

        def _send(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            seq = 0
            try:
                while not latest.closed:
                    seq, jpeg = latest.next_after(seq, timeout=1.0)
                    if jpeg is None or latest.closed:
                        continue
                    head = f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    self.wfile.write(head.encode() + jpeg + b"\r\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the viewer went away

    return Handler


class MJPEGSink(Sink):
    def __init__(self, port: int = DEFAULT_PORT, quality: int = 85) -> None:
        self.port, self.quality = port, quality
        self._latest = _LatestJpeg()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return f"mjpeg:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def open(self, width: int, height: int, fps: float) -> None:
        self._latest = _LatestJpeg()
        try:
            server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self._latest))
        except OSError as exc:
            raise SinkError(f"cannot serve the preview on 127.0.0.1:{self.port} ({exc.strerror}); pick another port: mjpeg:PORT") from None
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="mjpeg-http", daemon=True)
        self._thread.start()
        log.warning("preview at %s", self.url)

    def write(self, frame: Frame) -> None:
        self._latest.publish(encode_jpeg(frame.pixels, self.quality))

    def close(self) -> None:
        server, self._server = self._server, None
        with self._latest.cond:
            self._latest.closed = True
            self._latest.cond.notify_all()
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(2)

    def status(self) -> dict:
        return {"url": self.url}
