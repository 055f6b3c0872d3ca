"""The local model cache: where each source lives on disk, found without touching the network.

Layout under the cache directory (``$L2D_MODELS_DIR``, else ``$XDG_CACHE_HOME/l2d-obs/models``, else
``~/.cache/l2d-obs/models``):

    hf/                                      huggingface_hub's own cache layout (resumable, shared refs)
    civitai/<MODEL_ID>/<VERSION_ID|latest>/  one downloaded file + source.json (name, version, sha256)

A file that is not there raises MissingWeightsError naming the file and the command that fetches it.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import MissingWeightsError
from ..paths import models_dir
from .plan import Requirement
from .sources import CivitaiSource, HfSource, LocalSource

MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


def hf_cache_dir() -> Path:
    return models_dir() / "hf"


def civitai_dir(source: CivitaiSource) -> Path:
    version = str(source.version_id) if source.version_id is not None else "latest"
    return models_dir() / "civitai" / str(source.model_id) / version


def download_command(profile_ref: str | None) -> str:
    return f"l2d-obs models download --profile {profile_ref}" if profile_ref else "l2d-obs models download"


def profile_ref(profile) -> str:
    """How to name ``profile`` on the command line: its name if that finds this file, else its path."""
    from ..profiles import available_profiles

    path = profile.source_path
    if path is None or available_profiles().get(profile.name) == path:
        return profile.name
    return str(path)


def _missing(req: Requirement, where: str, profile_name: str | None) -> MissingWeightsError:
    return MissingWeightsError(
        f"{req.field} ({req.source}) is not downloaded: {where} is missing; "
        f"run '{download_command(profile_name)}' (needs internet once)"
    )


def _hf_cached_file(source: HfSource, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(
        repo_id=source.repo_id, filename=filename, cache_dir=str(hf_cache_dir()), revision=source.revision
    )
    return Path(found) if isinstance(found, str) else None


def resolve(req: Requirement, profile_name: str | None = None) -> Path:
    """The local path of a requirement (file, or folder holding ``req.folder_files``); never downloads."""
    source = req.source
    if isinstance(source, LocalSource):
        path = source.path
        if req.is_folder:
            absent = [f for f in req.folder_files if not _folder_has(path, f)]
            if absent:
                raise MissingWeightsError(
                    f"{req.field}: {path / absent[0]} not found (a local folder named in the profile; fix the path)"
                )
        elif not path.is_file():
            raise MissingWeightsError(f"{req.field}: {path}: no such file (a local path named in the profile; fix the path)")
        return path
    if isinstance(source, HfSource):
        if not req.is_folder:
            found = _hf_cached_file(source, source.path or "")
            if found is None:
                raise _missing(req, f"'{source.path}' of {source.repo_id}", profile_name)
            return found
        folder: Path | None = None
        for name in req.folder_files:
            found = _hf_cached_file(source, name)
            if found is None and _has_alternative(source, name):
                continue
            if found is None:
                raise _missing(req, f"'{name}' of {source.repo_id}", profile_name)
            # hub snapshots keep the repository's tree: the folder is the file path minus its name.
            folder = Path(str(found)[: -len(name)].rstrip("/"))
        assert folder is not None
        return folder
    if isinstance(source, CivitaiSource):
        directory = civitai_dir(source)
        files = sorted(p for p in directory.glob("*") if p.suffix in MODEL_SUFFIXES) if directory.is_dir() else []
        if not files:
            raise _missing(req, f"civitai model {source.model_id} in {directory}", profile_name)
        return files[0]
    raise TypeError(f"unknown source {source!r}")


# Weights files some repositories only have in the older pickle format.
_ALTERNATIVES = {
    "model.safetensors": "pytorch_model.bin",
    "diffusion_pytorch_model.safetensors": "diffusion_pytorch_model.bin",
    "text_encoder/model.safetensors": "text_encoder/pytorch_model.bin",
    "unet/diffusion_pytorch_model.safetensors": "unet/diffusion_pytorch_model.bin",
}
# Optional files (a tokenizer folder is complete with vocab.json and merges.txt).
# (the shipped CLIP tokenizer stands in for a base folder without one).
_OPTIONAL = {"tokenizer/tokenizer_config.json", "tokenizer/special_tokens_map.json", "model_index.json",
             "tokenizer/vocab.json", "tokenizer/merges.txt"}  # fmt: skip


def _has_alternative(source: HfSource, name: str) -> bool:
    if name in _OPTIONAL:
        return True
    alt = _ALTERNATIVES.get(name)
    return alt is not None and _hf_cached_file(source, alt) is not None


def _folder_has(folder: Path, name: str) -> bool:
    if name in _OPTIONAL or (folder / name).is_file():
        return True
    alt = _ALTERNATIVES.get(name)
    return alt is not None and (folder / alt).is_file()


def civitai_metadata(source: CivitaiSource) -> dict:
    meta = civitai_dir(source) / "source.json"
    try:
        return json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
