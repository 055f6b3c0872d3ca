"""Fetching weight files: Hugging Face (``hub.py``: resumable, byte progress) and civitai.

Nothing here runs unless a user asks for a download (``l2d-obs models download``); loading never
downloads. Offline mode (``HF_HUB_OFFLINE=1`` or ``L2D_OFFLINE=1``) refuses before any connection.
Every failure is one L2DError line saying which it was and what to do (``network.py``); retries are
bounded. A partial file is never the final one: huggingface_hub writes ``*.incomplete`` (resumed within
a run, removed after a failure by huggingface_hub 2.x) and civitai downloads go to ``*.part``, which
every retry and the next run resume.
The civitai token is read from ``$CIVITAI_TOKEN`` and only ever sent in a header, to civitai's own origin
(scheme, host, port) only: a redirect to a storage host goes without it (``network.make_request``). It
is never logged, and error messages pass through ``network.redact``. ``$L2D_CIVITAI_URL`` replaces the
API address (default ``https://civitai.com/api/v1``, e.g. a mirror or a test server); the token belongs
to that address's origin.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import urllib.request
from pathlib import Path
from typing import Callable

from ..errors import ConfigError, DownloadError, MissingWeightsError, ModelError, NetworkError
from . import hub, network
from .hashing import verify_sha256
from .network import Trouble
from .plan import Requirement
from .sources import CivitaiSource, HfSource, LocalSource
from .store import _ALTERNATIVES, _OPTIONAL, civitai_dir, download_command, resolve

log = logging.getLogger(__name__)

CIVITAI_API = "https://civitai.com/api/v1"
_CHUNK = 1 << 20

Note = Callable[[str], None]  # where a download says what it is about to fetch (sizes)


def _silent(_line: str) -> None:
    pass


def offline_mode() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "L2D_OFFLINE"))


def human_size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def fetch(req: Requirement, profile_name: str | None = None, note: Note = _silent) -> Path:
    """Make sure ``req`` is on disk (downloading what is missing) and return its local path.

    A NetworkError means the server cannot be reached at all (every other download would fail too)."""
    try:
        path = resolve(req, profile_name)
    except MissingWeightsError:
        if isinstance(req.source, LocalSource):
            raise
        if offline_mode():
            raise MissingWeightsError(
                f"{req.field} ({req.source}) is not downloaded and offline mode is on "
                "(HF_HUB_OFFLINE/L2D_OFFLINE); unset it and run the download again"
            ) from None
        command = download_command(profile_name)
        if isinstance(req.source, HfSource):
            path = _fetch_hf(req, command, note)
        else:
            path = _fetch_civitai(req.source, command, note)
    if req.sha256 and path.is_file():
        verify_sha256(path, req.sha256, download_command(profile_name))
    return path


def _hf_names(req: Requirement, files: dict[str, int | None]) -> list[str]:
    """The repository files ``req`` needs (a folder's older .bin in place of a missing .safetensors)."""
    source = req.source
    assert isinstance(source, HfSource)
    if not req.is_folder:
        if source.path not in files:
            raise DownloadError(f"{req.field}: {source.repo_id} has no file '{source.path}'; check the path in the profile")
        return [source.path]
    names = []
    for name in req.folder_files:
        if name not in files:
            alt = _ALTERNATIVES.get(name)
            if alt in files:
                name = alt
            elif name in _OPTIONAL:
                continue
            else:
                raise DownloadError(f"{req.field}: {source.repo_id} has no '{name}'; is it the right repository?")
        names.append(name)
    return names


def _plan_line(sizes: list[int | None], cached: int) -> str:
    known = sum(s for s in sizes if s is not None)
    if not known:
        size = "size unknown"
    else:
        size = human_size(known) + (" and more" if None in sizes else "")
    here = f" ({cached} already downloaded)" if cached else ""
    return f"{len(sizes)} file{'s' if len(sizes) != 1 else ''} to download, {size}{here}"


def _fetch_hf(req: Requirement, command: str, note: Note) -> Path:
    source = req.source
    assert isinstance(source, HfSource)
    files = hub.repo_files(source, command)
    names = _hf_names(req, files)
    todo = [name for name in names if hub.cached_file(source, name) is None]
    note(_plan_line([files[name] for name in todo], len(names) - len(todo)))
    for name in todo:
        hub.download(source, name, command)
    return resolve(req)


# --- civitai -------------------------------------------------------------------------------------


def civitai_api() -> str:
    """The civitai API address: $L2D_CIVITAI_URL or https://civitai.com/api/v1."""
    url = os.environ.get("L2D_CIVITAI_URL", "").strip().rstrip("/") or CIVITAI_API
    scheme, host, _ = network.origin(url)
    if scheme not in ("http", "https") or not host:
        raise ConfigError(f"L2D_CIVITAI_URL must be an http(s) address like {CIVITAI_API}, "
                          f"got {network.redact(url)!r}")
    return url


def _civitai_request(url: str) -> urllib.request.Request:
    """A request that carries $CIVITAI_TOKEN if ``url`` is on civitai's own origin, never beyond it."""
    token = os.environ.get("CIVITAI_TOKEN", "").strip()
    return network.make_request(url, {"Authorization": f"Bearer {token}"} if token else None, owner=civitai_api())


def _civitai_error(trouble: Trouble, tries: int, what: str, command: str) -> DownloadError:
    again = f"run '{command}' again"
    if trouble.network:
        attempts = f", {tries} attempts" if tries > 1 else ""
        advice = f"{trouble.advice}; then " if trouble.advice else ""
        return NetworkError(f"cannot reach civitai for {what}: {trouble.what}{attempts}; {advice}{again}")
    if trouble.status in (401, 403):
        return DownloadError(f"civitai refused {what} ({trouble.what}): set CIVITAI_TOKEN to your civitai API key "
                             f"(some models need one), then {again}")
    if trouble.status == 404:
        return DownloadError(f"civitai has no {what} ({trouble.what}); check the civitai id in the profile")
    if trouble.status is not None:
        return DownloadError(f"civitai answered {trouble.what} for {what}; {trouble.advice or 'try again later'}, "
                             f"then {again}")
    return DownloadError(f"download of {what} interrupted: {trouble.what}; {again} to resume")


def _civitai_json(url: str, what: str, command: str) -> dict:
    timeout = network.timeout_s()

    def get() -> bytes:
        with network.open_url(_civitai_request(url), timeout) as response:
            return response.read()

    try:
        body = network.with_retries(get, f"civitai {what}", lambda t, n: _civitai_error(t, n, what, command), timeout)
    except OSError as exc:  # a URLError that is no network failure
        raise DownloadError(network.redact(f"cannot fetch civitai {what} ({url}): {exc}")) from None
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DownloadError(network.redact(f"civitai answered {url} with no JSON ({exc}); try again later")) from None


def pick_civitai_file(version: dict) -> dict:
    """The model file of a civitai version: safetensors preferred, then the primary file."""
    files = [f for f in version.get("files", []) if f.get("type") in ("Model", "Pruned Model", None)]
    if not files:
        raise ModelError(f"civitai version {version.get('id')} lists no model file")
    ranked = sorted(
        files,
        key=lambda f: (
            (f.get("metadata") or {}).get("format") != "SafeTensor",
            not f.get("primary", False),
            (f.get("metadata") or {}).get("fp") not in (None, "fp16"),
        ),
    )
    return ranked[0]


def _fetch_civitai(source: CivitaiSource, command: str, note: Note) -> Path:
    api = civitai_api()
    if source.version_id is not None:
        version = _civitai_json(f"{api}/model-versions/{source.version_id}", f"model version {source.version_id}",
                                command)
    else:
        model = _civitai_json(f"{api}/models/{source.model_id}", f"model {source.model_id}", command)
        versions = model.get("modelVersions") or []
        if not versions:
            raise ModelError(f"civitai model {source.model_id} has no versions")
        version = versions[0]  # civitai lists the newest first
    chosen = pick_civitai_file(version)
    name = Path(chosen["name"]).name
    target = civitai_dir(source) / name
    sha256 = ((chosen.get("hashes") or {}).get("SHA256") or "").lower() or None
    size_kb = chosen.get("sizeKB")
    note(_plan_line([int(size_kb * 1024) if isinstance(size_kb, (int, float)) else None], 0))
    log.info("civitai %s: version %s, file %s", source, version.get("id"), name)
    download_url(chosen["downloadUrl"], target, _civitai_request, command)
    if sha256:
        verify_sha256(target, sha256, command)
    (target.parent / "source.json").write_text(
        json.dumps({"source": str(source), "version_id": version.get("id"), "file": name, "sha256": sha256}, indent=2)
    )
    return target


def download_url(url: str, target: Path,
                 make_request: Callable[[str], urllib.request.Request] = network.make_request,
                 command: str = "l2d-obs models download") -> Path:
    """Download to ``target`` through ``target.part``; every attempt (and the next run) resumes the
    partial file with an HTTP Range request. ``target`` appears only once complete. A token in the
    request (or in ``url``'s query) stays with its origin when the server redirects elsewhere."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    timeout = network.timeout_s()
    try:
        network.with_retries(lambda: _transfer(url, part, make_request, timeout), target.name,
                             lambda t, n: _civitai_error(t, n, target.name, command), timeout)
        part.replace(target)
    except OSError as exc:  # the disk (full, read-only) or a URLError that is no network failure
        raise ModelError(network.redact(f"download of {target.name} failed: {exc}; run '{command}' again to resume")) from None
    return target


def _transfer(url: str, part: Path, make_request: Callable[[str], urllib.request.Request], timeout: float) -> None:
    """One attempt: append to ``part`` what the server sends from its current size on."""
    from tqdm.auto import tqdm

    have = part.stat().st_size if part.exists() else 0
    request = make_request(url)
    if have:
        request.add_header("Range", f"bytes={have}-")
    with network.open_url(request, timeout) as response:
        if have and response.status != 206:
            have = 0  # the server ignored the range: start over
        length = response.headers.get("Content-Length")
        total = int(length) + have if length else None
        with open(part, "ab" if have else "wb") as out, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, desc=part.name.removesuffix(".part")
        ) as bar:
            while block := response.read(_CHUNK):
                out.write(block)
                bar.update(len(block))
    size = part.stat().st_size
    if total is not None and size < total:  # the server closed early without an error
        raise http.client.IncompleteRead(b"", total - size)
