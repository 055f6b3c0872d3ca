"""The requests downloads make themselves (hub metadata, civitai): a short timeout, a few attempts, and
every failure said in words: no network, DNS, refused, no answer, the connection broke off, HTTP NNN.

``diagnose`` also reads the errors huggingface_hub raises (it walks the exception chain down to the
socket error, and reads ``.response.status_code``), so hub transfers are described the same way.

Tokens go only to the host they belong to: ``make_request`` puts a token header (``secret``) on a request
only when its URL has the origin (scheme, host, port) of ``owner``, as an unredirected header, and the
opener's redirect handler gives it back only on a redirect to that same origin. A redirect to another
origin (a storage host) goes without it, and without any query parameter carrying the token (a URL's own
``?token=`` belongs to that URL's origin). ``redact`` takes tokens out of any text bound for a log line or
an error message.
"""

from __future__ import annotations

import errno
import http.client
import logging
import os
import re
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import IO, Callable, Iterator, Mapping, TypeVar
from urllib.parse import parse_qsl, unquote_plus, urlsplit, urlunsplit

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
            log.warning("%s: %s; trying again in %g s (attempt %d of %d)", redact(what), redact(trouble.what), wait,
                        tries + 1, len(RETRY_WAITS) + 1)
            time.sleep(wait)


# --- tokens: only to their own origin, never in a message ---------------------------------------

Origin = tuple[str, str, int]  # scheme, host, port
_DEFAULT_PORTS = {"http": 80, "https": 443}
_TOKEN_ENV = ("CIVITAI_TOKEN", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
# Query parameters that carry a credential (civitai's ?token=, API keys) ...
_TOKEN_PARAMS = frozenset({"token", "access_token", "api_key", "apikey", "key", "auth", "password"})
# ... and those redacted in messages too (signed storage URLs).
_SECRET_PARAM = re.compile(
    r"(?i)([?&;](?:" + "|".join(sorted(_TOKEN_PARAMS)) + r"|sig|signature|x-amz-signature|x-amz-credential|"
    r"x-amz-security-token)=)[^&#\s'\"]+"
)


def origin(url: str) -> Origin:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:  # a port that is no number: matches no origin
        port = -1
    return scheme, (parts.hostname or "").lower(), port


@dataclass(frozen=True, repr=False)
class _Credential:
    """Headers and query values that belong to one origin."""

    origin: Origin
    headers: Mapping[str, str]
    values: frozenset[str]  # the raw tokens, to keep them out of other origins' query strings

    def __repr__(self) -> str:
        return f"_Credential({self.origin}, headers={sorted(self.headers)}, values=***)"


_CREDENTIAL = "_l2d_credential"  # where a Request keeps its _Credential


def _query_tokens(url: str) -> set[str]:
    return {v for k, v in parse_qsl(urlsplit(url).query) if k.lower() in _TOKEN_PARAMS and v}


def make_request(url: str, secret: Mapping[str, str] | None = None, owner: str | None = None,
                 headers: Mapping[str, str] | None = None) -> urllib.request.Request:
    """A GET with our User-Agent. ``secret`` headers (a token) are sent only if ``url`` has the origin of
    ``owner`` (default: ``url`` itself), and on redirects only back to that origin."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    home = origin(owner or url)
    values = _query_tokens(url) if origin(url) == home else set()
    values |= {v.split()[-1] for v in (secret or {}).values() if v.strip()}  # "Bearer TOKEN" -> TOKEN
    credential = _Credential(home, dict(secret or {}), frozenset(values))
    if origin(url) == home:
        for name, value in credential.headers.items():
            request.add_unredirected_header(name, value)
    setattr(request, _CREDENTIAL, credential)
    return request


def _drop_tokens(url: str, values: frozenset[str]) -> str:
    """``url`` without the query parameters whose value is one of ``values`` (the rest kept verbatim)."""
    parts = urlsplit(url)
    pieces = parts.query.split("&") if parts.query else []
    kept = [p for p in pieces if unquote_plus(p.partition("=")[2]) not in values]
    return url if len(kept) == len(pieces) else urlunsplit(parts._replace(query="&".join(kept)))


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """urllib's redirects, with a request's credential carried only to the origin it belongs to."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: Mapping[str, str], newurl: str) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        credential: _Credential | None = getattr(req, _CREDENTIAL, None)
        if new is None or credential is None:
            return new
        if origin(new.full_url) == credential.origin:
            for name, value in credential.headers.items():
                new.add_unredirected_header(name, value)
        else:
            new.full_url = _drop_tokens(new.full_url, credential.values)
            log.debug("redirected to %s://%s: no token sent there", *origin(new.full_url)[:2])
        setattr(new, _CREDENTIAL, credential)
        return new


def open_url(request: urllib.request.Request, timeout: float) -> http.client.HTTPResponse:
    """urlopen, with tokens kept to their own origin across redirects."""
    return urllib.request.build_opener(_SameOriginRedirects).open(request, timeout=timeout)


def _known_tokens() -> set[str]:
    tokens = {os.environ.get(name, "").strip() for name in _TOKEN_ENV}
    return {t for t in tokens if len(t) >= 4}


def redact(text: str, *secrets: str) -> str:
    """``text`` with every known token (``$CIVITAI_TOKEN``, ``$HF_TOKEN``, ``secrets``) and every
    credential-looking query value replaced by ***: safe for a log line or an error message."""
    for token in sorted(_known_tokens() | {s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(token, "***")
    return _SECRET_PARAM.sub(r"\1***", text)


def read_url(url: str, headers: Mapping[str, str] | None = None, timeout: float | None = None,
             secret: Mapping[str, str] | None = None, owner: str | None = None) -> bytes:
    """The body of one GET (no retries: wrap it in ``with_retries``); ``secret``: see ``make_request``."""
    request = make_request(url, secret, owner, headers)
    with open_url(request, timeout if timeout is not None else timeout_s()) as response:
        return response.read()
