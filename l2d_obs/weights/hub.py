"""Hugging Face hub downloads: a repository's files and sizes in one API request (bounded retries; it is
also the check that the hub answers and has the repository), then huggingface_hub's own transfer: a byte
progress bar on a terminal, a few resumes when the connection breaks off, and a ``*.incomplete`` blob
that becomes the cached file only when complete. Failures are one line each.

huggingface_hub gives its logger a stderr handler of its own and lets records reach the root handler
too, so every warning printed twice; ``_hub`` drops that handler once: our logging prints them once.

The Hugging Face token (``HF_TOKEN`` or ``huggingface-cli login``) goes on our own file-list request only
to the hub's origin and never follows a redirect elsewhere (``network.make_request``); huggingface_hub's
transfers handle it themselves (they leave it off redirects to the CDN). Messages pass through
``network.redact``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from types import ModuleType
from urllib.parse import quote, urlsplit

from ..errors import DownloadError, ModelError, NetworkError
from . import network
from .network import Trouble
from .sources import HfSource
from .store import hf_cache_dir


def _hub() -> ModuleType:
    import huggingface_hub

    hub_logger = logging.getLogger("huggingface_hub")
    for handler in list(hub_logger.handlers):
        if type(handler) is logging.StreamHandler:
            hub_logger.removeHandler(handler)
    return huggingface_hub


def endpoint() -> str:
    """The hub's address: https://huggingface.co, or $HF_ENDPOINT (as huggingface_hub read it)."""
    _hub()
    from huggingface_hub import constants

    return constants.ENDPOINT


def _where() -> str:
    return f"the Hugging Face hub at {urlsplit(endpoint()).netloc}" + (" (HF_ENDPOINT)" if os.environ.get("HF_ENDPOINT") else "")


def _token_header() -> dict[str, str]:
    token = _hub().get_token()
    return {"Authorization": f"Bearer {token}"} if token else {}


def hub_error(trouble: Trouble, tries: int, source: HfSource, command: str, filename: str | None = None,
              probe: bool = False) -> DownloadError:
    """One line: which failure it was and what to do. ``probe``: the file-list request, where a
    connection that breaks off means the hub is not really reachable either."""
    # huggingface_hub resumes a transfer that breaks off a few times itself, then removes the partial file.
    again = f"run '{command}' again" + (" (files already downloaded are kept)" if filename else "")
    if trouble.network or (probe and trouble.status is None):
        attempts = f", {tries} attempts" if tries > 1 else ""
        advice = f"{trouble.advice}; then " if trouble.advice else ""
        return NetworkError(f"cannot reach {_where()}: {trouble.what}{attempts}; {advice}{again}")
    page = f"{endpoint()}/{source.repo_id}"
    thing = f"'{filename}' of {source.repo_id}" if filename else source.repo_id
    if trouble.status == 401:
        return DownloadError(f"{_where()} refused {source.repo_id} ({trouble.what}): the repository is gated or "
                             f"private, or its name in the profile is wrong; for a gated model accept its terms on "
                             f"{page} and set HF_TOKEN to an access token, then {again}")
    if trouble.status == 403:
        return DownloadError(f"{_where()} refused {thing} ({trouble.what}): the account of HF_TOKEN has no access; "
                             f"accept the model's terms on {page} with it, then {again}")
    if trouble.status == 404:
        if filename:
            return DownloadError(f"{source.repo_id} has no file '{filename}' on {_where()} ({trouble.what}); "
                                 "check the path in the profile")
        rev = f" at revision {source.revision}" if source.revision else ""
        return DownloadError(f"{source.repo_id}{rev} is not on {_where()} ({trouble.what}); check the repository "
                             "name (and revision) in the profile")
    if trouble.status is not None:
        return DownloadError(f"{_where()} answered {trouble.what} for {thing}; "
                             f"{trouble.advice or 'try again later'}, then {again}")
    return DownloadError(f"download of {thing} interrupted: {trouble.what}; {again}")


def repo_files(source: HfSource, command: str) -> dict[str, int | None]:
    """File name -> size in bytes (None where the hub gives none) of the repository at its revision."""
    revision = quote(source.revision or "main", safe="")
    url = f"{endpoint()}/api/models/{source.repo_id}/revision/{revision}?blobs=true"
    timeout = network.timeout_s()
    body = network.with_retries(
        lambda: network.read_url(url, timeout=timeout, secret=_token_header(), owner=endpoint()),
        f"{source.repo_id} on the hub",
        lambda trouble, tries: hub_error(trouble, tries, source, command, probe=True),
        timeout,
    )
    try:
        return {s["rfilename"]: _size(s) for s in json.loads(body)["siblings"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise NetworkError(network.redact(f"{_where()} answered {url} with no file list ({type(exc).__name__}: "
                                          f"{exc}); is HF_ENDPOINT a Hugging Face hub?")) from None


def _size(sibling: dict) -> int | None:
    size = sibling.get("size", (sibling.get("lfs") or {}).get("size"))
    return size if isinstance(size, int) else None


def cached_file(source: HfSource, filename: str) -> Path | None:
    found = _hub().try_to_load_from_cache(repo_id=source.repo_id, filename=filename, cache_dir=str(hf_cache_dir()),
                                          revision=source.revision)
    return Path(found) if isinstance(found, str) else None


def download(source: HfSource, filename: str, command: str) -> Path:
    """One file into the cache (``blobs/*.incomplete`` until it is complete)."""
    hub = _hub()
    timeout = network.timeout_s()
    try:
        path = hub.hf_hub_download(source.repo_id, filename, revision=source.revision, cache_dir=str(hf_cache_dir()),
                                   etag_timeout=timeout)
    except Exception as exc:
        trouble = network.diagnose(exc, timeout)
        if trouble is not None:
            raise hub_error(trouble, 1, source, command, filename) from None
        if type(exc).__module__.startswith("huggingface_hub"):
            raise DownloadError(network.redact(f"download of '{filename}' of {source.repo_id} failed: {exc}; "
                                               f"run '{command}' again")) from None
        if isinstance(exc, OSError):
            raise ModelError(f"cannot write '{filename}' of {source.repo_id} to the model cache {hf_cache_dir()}: "
                             f"{exc.strerror or exc}") from None
        raise
    return Path(path)
