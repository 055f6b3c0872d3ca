"""The requests downloads make themselves (hub metadata, civitai): a short timeout, a few attempts, and
every failure said in words: no network, DNS, refused, no answer, the connection broke off, HTTP NNN.

``diagnose`` also reads the errors huggingface_hub raises (it walks the exception chain down to the
socket error, and reads ``.response.status_code``), so hub transfers are described the same way.
"""

from __future__ import annotations

import errno
import http.client
import logging
import os
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, Iterator, TypeVar

from ..errors import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")

USER_AGENT = "l2d-obs"
RETRY_WAITS = (1.0, 2.0)  # seconds before the second and the third (last) attempt
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Three attempts at a server that accepts and never answers: 3 x 8 s + 1 s + 2 s = 27 s, under 30 s.
DEFAULT_TIMEOUT_S = 8.0
_UNREACHABLE = {errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTUNREACH}
_STATUS_WORDS = {401: "not authorised", 403: "forbidden", 404: "not found", 429: "too many requests"}


def timeout_s() -> float:
    """Seconds our requests wait for a server (to connect, and for each read): $L2D_NETWORK_TIMEOUT or 8."""
    raw = os.environ.get("L2D_NETWORK_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ConfigError(f"L2D_NETWORK_TIMEOUT must be a number of seconds above 0, got {raw!r}")
    return value


@dataclass(frozen=True)
class Trouble:
    """Why one request failed, and what to do about it."""

    what: str  # "connection refused", "no answer within 8 s", "HTTP 404 (not found)", ...
    advice: str
    network: bool  # the server cannot be reached at all: every request to it would fail alike
    retry: bool  # worth another attempt
    status: int | None = None


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        reason = getattr(exc, "reason", None)  # urllib's URLError keeps the socket error here
        exc = exc.__cause__ or exc.__context__ or (reason if isinstance(reason, BaseException) else None)


def _status(exc: BaseException) -> int | None:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code
    code = getattr(getattr(exc, "response", None), "status_code", None)  # huggingface_hub, httpx, requests
    return code if isinstance(code, int) else None


def diagnose(exc: BaseException, timeout: float) -> Trouble | None:
    """What went wrong in network terms, or None when ``exc`` is no network failure (a full disk, a bug)."""
    for e in _chain(exc):
        status = _status(e)
        if status is not None:
            words = f" {_STATUS_WORDS[status]}" if status in _STATUS_WORDS else ""
            retry = status in RETRY_STATUSES
            advice = "the server is busy or failing: try again later" if retry else ""
            return Trouble(f"HTTP {status}{words}", advice, network=False, retry=retry, status=status)
        if isinstance(e, socket.gaierror):
            return Trouble(f"DNS lookup failed ({e.strerror})", "check your internet connection", network=True,
                           retry=e.errno == socket.EAI_AGAIN)
        if isinstance(e, ConnectionRefusedError):
            return Trouble("connection refused", "is the address right and the server up? check any proxy setting",
                           network=True, retry=True)
        if isinstance(e, TimeoutError) or "Timeout" in type(e).__name__:
            return Trouble(f"no answer within {timeout:g} s", "the network or the server is slow or down: try again "
                           "later, or allow more seconds with L2D_NETWORK_TIMEOUT", network=True, retry=True)
        if isinstance(e, OSError) and e.errno in _UNREACHABLE:
            return Trouble(f"no network ({e.strerror})", "connect to the internet", network=True, retry=True)
        if isinstance(e, ssl.SSLError):
            return Trouble(f"TLS failed ({e.reason or e})", "check the system clock and any proxy that intercepts "
                           "HTTPS", network=True, retry=False)
        if isinstance(e, (ConnectionError, http.client.HTTPException)) or type(e).__name__ in (
            "RemoteProtocolError", "ReadError", "WriteError", "ChunkedEncodingError"
        ):
            return Trouble("the connection broke off", "", network=False, retry=True)
    return None


def with_retries(attempt: Callable[[], T], what: str, fail: Callable[[Trouble, int], Exception],
                 timeout: float) -> T:
    """Run ``attempt`` (one request) until it succeeds: a passing trouble is retried at most
    len(RETRY_WAITS) times, each retry in one log line; a lasting one, or the last, raises
    ``fail(trouble, attempts made)``. Anything that is no network failure propagates as it is."""
    waits = iter(RETRY_WAITS)
    tries = 0
    while True:
        tries += 1
        try:
            return attempt()
        except Exception as exc:
            trouble = diagnose(exc, timeout)
            if trouble is None:
                raise
            wait = next(waits, None) if trouble.retry else None
            if wait is None:
                raise fail(trouble, tries) from exc
            log.warning("%s: %s; trying again in %g s (attempt %d of %d)", what, trouble.what, wait, tries + 1,
                        len(RETRY_WAITS) + 1)
            time.sleep(wait)


def read_url(url: str, headers: dict[str, str] | None = None, timeout: float | None = None) -> bytes:
    """The body of one GET (no retries: wrap it in ``with_retries``)."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    with urllib.request.urlopen(request, timeout=timeout if timeout is not None else timeout_s()) as response:
        return response.read()
