"""Where a weight file comes from: the source syntax of profiles.

    hf:OWNER/REPO[@REVISION]            a whole Hugging Face repository (a diffusers/transformers folder)
    hf:OWNER/REPO[@REVISION]/PATH       one file in it, e.g. hf:Leoxing/Live2Diff/live2diff.ckpt
    civitai:MODEL_ID[@VERSION_ID]       a civitai model (the id in civitai.com/models/ID/...); without a
                                        version, the newest version at download time. Needs $CIVITAI_TOKEN
                                        where civitai asks for a login.
    /abs/path, ~/path, ./rel, rel       a local file or folder; relative paths are taken from the
                                        directory of the profile that names them.
    package:PATH                        a file or folder shipped inside the l2d-obs package
                                        (l2d_obs/data/PATH), e.g. the trained default's weights.

A repository id is always exactly OWNER/REPO, so everything after the second slash is the file path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..paths import DATA_DIR

_HF_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


@dataclass(frozen=True)
class HfSource:
    repo_id: str
    path: str | None = None  # None: the whole repository
    revision: str | None = None

    def __str__(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"hf:{self.repo_id}{rev}" + (f"/{self.path}" if self.path else "")


@dataclass(frozen=True)
class CivitaiSource:
    model_id: int
    version_id: int | None = None

    def __str__(self) -> str:
        return f"civitai:{self.model_id}" + (f"@{self.version_id}" if self.version_id is not None else "")


@dataclass(frozen=True)
class LocalSource:
    path: Path

    def __str__(self) -> str:
        return str(self.path)


Source = HfSource | CivitaiSource | LocalSource


def parse_source(text: str, base_dir: Path | None = None) -> Source:
    """Parse a source string; raises ConfigError saying what is wrong with it."""
    text = text.strip()
    if not text:
        raise ConfigError("empty model source: give hf:OWNER/REPO[/FILE], civitai:MODEL_ID[@VERSION] or a path")
    if text.startswith("hf:"):
        return _parse_hf(text)
    if text.startswith("civitai:"):
        return _parse_civitai(text)
    if text.startswith("package:"):
        return _parse_package(text)
    if re.match(r"^[a-z][a-z0-9+.-]*://", text):
        raise ConfigError(f"model source {text!r}: URLs are not supported; use hf:..., civitai:... or a local path")
    path = Path(text).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return LocalSource(path)


PACKAGE_DATA_DIR = DATA_DIR


def _parse_package(text: str) -> LocalSource:
    rel = text[len("package:"):].strip("/")
    parts = rel.split("/")
    if not rel or any(p in ("", ".", "..") for p in parts):
        raise ConfigError(f"model source {text!r}: expected package:PATH inside the package's data folder")
    return LocalSource(PACKAGE_DATA_DIR.joinpath(*parts))


def _parse_hf(text: str) -> HfSource:
    rest = text[len("hf:"):]
    parts = rest.split("/")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ConfigError(f"model source {text!r}: expected hf:OWNER/REPO[@REVISION][/PATH]")
    owner, repo = parts[0], parts[1]
    revision = None
    if "@" in repo:
        repo, revision = repo.split("@", 1)
        if not _REVISION.match(revision):
            raise ConfigError(f"model source {text!r}: bad revision {revision!r}")
    if not _HF_PART.match(owner) or not _HF_PART.match(repo):
        raise ConfigError(f"model source {text!r}: bad repository id '{owner}/{repo}'")
    path = "/".join(parts[2:]) or None
    if path is not None and any(p in ("", ".", "..") for p in path.split("/")):
        raise ConfigError(f"model source {text!r}: bad file path {path!r} in the repository")
    return HfSource(repo_id=f"{owner}/{repo}", path=path, revision=revision)


def _parse_civitai(text: str) -> CivitaiSource:
    match = re.fullmatch(r"civitai:(\d+)(?:@(\d+))?", text)
    if not match:
        raise ConfigError(f"model source {text!r}: expected civitai:MODEL_ID or civitai:MODEL_ID@VERSION_ID (digits)")
    version = int(match.group(2)) if match.group(2) else None
    return CivitaiSource(model_id=int(match.group(1)), version_id=version)
