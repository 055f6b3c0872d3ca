"""Which weight files a profile needs: one Requirement per file or folder, in load order."""

from __future__ import annotations

from dataclasses import dataclass

from ..profiles import NO_LCM_LORA, Profile
from .sources import HfSource, LocalSource, Source, parse_source

# What to fetch from a repository source, per role (only what l2d-obs loads, never whole repos).
SD15_FOLDER_FILES = (
    "model_index.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "tokenizer/vocab.json",
    "tokenizer/merges.txt",
    "tokenizer/tokenizer_config.json",
    "tokenizer/special_tokens_map.json",
)
TAESD_FOLDER_FILES = ("config.json", "diffusion_pytorch_model.safetensors")
DEPTH_FOLDER_FILES = ("config.json", "model.safetensors")

DEPTH_SOURCES = {
    "dpt-hybrid": "hf:Intel/dpt-hybrid-midas",
    "depth-anything-small": "hf:LiheYoung/depth-anything-small-hf",
}


@dataclass(frozen=True)
class Requirement:
    role: str  # "base", "motion", "lcm_lora", "vae", "lora:NAME", "depth"
    field: str  # the profile field that names it, for messages
    source: Source
    folder_files: tuple[str, ...] = ()  # a repository/folder source: the files needed inside it
    sha256: str | None = None

    @property
    def is_folder(self) -> bool:
        return bool(self.folder_files)


def _folder_files(source: Source, files: tuple[str, ...]) -> tuple[str, ...]:
    # An hf: source with a file path (or a local file) is a single file; a bare repository is a folder.
    if isinstance(source, HfSource):
        return () if source.path else files
    return ()


def profile_requirements(profile: Profile) -> list[Requirement]:
    """Every file a 'sd15' profile loads; empty for the tiny profile (random weights)."""
    if profile.model.kind != "sd15":
        return []
    base_dir = profile.source_path.parent if profile.source_path else None
    m = profile.model

    def req(role: str, field: str, text: str, files: tuple[str, ...] = (), sha: str | None = None) -> Requirement:
        source = parse_source(text, base_dir)
        folder = _folder_files(source, files)
        if files and isinstance(source, LocalSource) and (source.path.is_dir() or source.path.suffix == ""):
            folder = files  # a local folder
        return Requirement(role=role, field=field, source=source, folder_files=folder, sha256=sha)

    reqs = [
        req("base", "model.base", m.base, SD15_FOLDER_FILES, m.base_sha256),
        req("motion", "model.motion", m.motion, sha=m.motion_sha256),
        req("vae", "model.vae", m.vae, TAESD_FOLDER_FILES),
    ]
    if m.lcm_lora != NO_LCM_LORA:
        reqs.insert(2, req("lcm_lora", "model.lcm_lora", m.lcm_lora, sha=m.lcm_lora_sha256))
    for i, lora in enumerate(m.loras):
        reqs.append(req(f"lora:{lora.name or i}", f"model.loras[{i}].source", lora.source, sha=lora.sha256))
    if profile.depth.enabled:
        text = profile.depth.source or DEPTH_SOURCES.get(profile.depth.estimator)
        if text:
            field = "depth.source" if profile.depth.source else "depth.estimator"
            reqs.append(req("depth", field, text, DEPTH_FOLDER_FILES))
    return reqs
