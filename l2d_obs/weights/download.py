"""Fetching weight files: Hugging Face (via huggingface_hub: resumable, progress bars) and civitai.

Nothing here runs unless a user asks for a download (``l2d-obs models download``); loading never
downloads. Offline mode (``HF_HUB_OFFLINE=1`` or ``L2D_OFFLINE=1``) refuses before any connection.
The civitai token is read from ``$CIVITAI_TOKEN`` and only ever sent in a header, never logged.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import MissingWeightsError, ModelError
from .hashing import verify_sha256
from .plan import Requirement
from .sources import CivitaiSource, HfSource, LocalSource
from .store import _ALTERNATIVES, _OPTIONAL, civitai_dir, download_command, hf_cache_dir, resolve

log = logging.getLogger(__name__)

CIVITAI_API = "https://civitai.com/api/v1"
_CHUNK = 1 << 20


def offline_mode() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "L2D_OFFLINE"))


def fetch(req: Requirement, profile_name: str | None = None) -> Path:
    """Make sure ``req`` is on disk (downloading what is missing) and return its local path."""
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
        if isinstance(req.source, HfSource):
            path = _fetch_hf(req)
        else:
            path = _fetch_civitai(req.source)
    if req.sha256 and path.is_file():
        verify_sha256(path, req.sha256, download_command(profile_name))
    return path


def _fetch_hf(req: Requirement) -> Path:
    from huggingface_hub import hf_hub_download, list_repo_files
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

    source = req.source
    assert isinstance(source, HfSource)
    cache = str(hf_cache_dir())
    try:
        if not req.is_folder:
            return Path(hf_hub_download(source.repo_id, source.path or "", revision=source.revision, cache_dir=cache))
        available = set(list_repo_files(source.repo_id, revision=source.revision))
        last: Path | None = None
        for name in req.folder_files:
            if name not in available:
                alt = _ALTERNATIVES.get(name)
                if alt in available:
                    name = alt
                elif name in _OPTIONAL:
                    continue
                else:
                    raise ModelError(f"{req.field}: {source.repo_id} has no '{name}'; is it the right repository?")
            last = Path(hf_hub_download(source.repo_id, name, revision=source.revision, cache_dir=cache))
        assert last is not None
        return resolve(req)
    except (RepositoryNotFoundError, EntryNotFoundError) as exc:
        raise ModelError(f"{req.field}: {source} not found on the Hugging Face hub: {exc}") from None
    except HfHubHTTPError as exc:
        raise ModelError(f"{req.field}: download of {source} failed: {exc}; run the command again to resume") from None
    except OSError as exc:
        raise ModelError(f"{req.field}: download of {source} failed: {exc}; run the command again to resume") from None


def _civitai_request(url: str) -> urllib.request.Request:
    request = urllib.request.Request(url, headers={"User-Agent": "l2d-obs"})
    token = os.environ.get("CIVITAI_TOKEN", "").strip()
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    return request


def _civitai_json(url: str) -> dict:
    try:
        with urllib.request.urlopen(_civitai_request(url), timeout=30) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        raise ModelError(f"civitai answered {exc.code} for {url}; check the id (and $CIVITAI_TOKEN)") from None
    except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot reach civitai ({url}): {exc}") from None


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


def _fetch_civitai(source: CivitaiSource) -> Path:
    if source.version_id is not None:
        version = _civitai_json(f"{CIVITAI_API}/model-versions/{source.version_id}")
    else:
        model = _civitai_json(f"{CIVITAI_API}/models/{source.model_id}")
        versions = model.get("modelVersions") or []
        if not versions:
            raise ModelError(f"civitai model {source.model_id} has no versions")
        version = versions[0]  # civitai lists the newest first
    chosen = pick_civitai_file(version)
    name = Path(chosen["name"]).name
    target = civitai_dir(source) / name
    sha256 = ((chosen.get("hashes") or {}).get("SHA256") or "").lower() or None
    log.info("civitai %s: version %s, file %s", source, version.get("id"), name)
    download_url(chosen["downloadUrl"], target, _civitai_request)
    if sha256:
        verify_sha256(target, sha256, "l2d-obs models download")
    (target.parent / "source.json").write_text(
        json.dumps({"source": str(source), "version_id": version.get("id"), "file": name, "sha256": sha256}, indent=2)
    )
    return target


def download_url(url: str, target: Path, make_request=lambda u: urllib.request.Request(u)) -> Path:
    """Download to ``target`` through ``target.part``, resuming a partial file with an HTTP Range request."""
    from tqdm.auto import tqdm

    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = make_request(url)
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            if have and response.status != 206:
                have = 0  # the server ignored the range: start over
            total = response.headers.get("Content-Length")
            total = int(total) + have if total else None
            with open(part, "ab" if have else "wb") as out, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=target.name
            ) as bar:
                while block := response.read(_CHUNK):
                    out.write(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as exc:
        hint = " (set CIVITAI_TOKEN to your civitai API key)" if exc.code in (401, 403) else ""
        raise ModelError(f"download of {target.name} refused: HTTP {exc.code}{hint}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ModelError(f"download of {target.name} interrupted: {exc}; run the command again to resume") from None
    part.replace(target)
    return target
