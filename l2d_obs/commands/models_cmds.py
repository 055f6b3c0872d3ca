"""`l2d-obs models download | list | verify` — the weight files profiles need."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import command_set
from ..errors import ConfigError, L2DError, ModelError, NetworkError
from ..profiles import Profile, available_profiles, load_profile, load_profile_file
from ..weights.download import fetch
from ..weights.hashing import sha256_file
from ..weights.plan import Requirement, profile_requirements
from ..weights.sources import CivitaiSource
from ..paths import models_dir
from ..weights.store import civitai_metadata, download_command, profile_ref, resolve

log = logging.getLogger(__name__)

app = command_set()  # what cli.py adds to the root
models_app = typer.Typer(help="Download, list and verify model weights (cache: $L2D_MODELS_DIR).", no_args_is_help=True)
app.add_typer(models_app, name="models")

ProfileOption = Annotated[
    Optional[list[str]],
    typer.Option("--profile", "-p", help="Profile name or .toml path (repeatable; default: every profile)."),
]


def _profiles(names: list[str] | None) -> tuple[list[Profile], int]:
    """The profiles named, or every known one; of those a broken file is named in one line on stderr
    and skipped (one bad user profile must not hide the others). Returns (profiles, files skipped)."""
    if names:
        return [load_profile(n) for n in names], 0
    found, skipped = [], 0
    for path in available_profiles().values():
        try:
            found.append(load_profile_file(path))
        except ConfigError as exc:  # ProfileError, or a bad source string in it
            skipped += 1
            typer.echo(f"skipped a broken profile: {exc}", err=True)
    return found, skipped


def _size(path: Path) -> str:
    if path.is_dir():
        total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    else:
        total = path.stat().st_size
    return f"{total / 2**20:,.1f} MiB"


@models_app.command("download")
def download(profile: ProfileOption = None) -> None:
    """Fetch every file the profile(s) need that is not in the cache yet, with sizes and byte progress
    (resumes partial downloads)."""
    failures: list[L2DError] = []
    profiles, _ = _profiles(profile)
    for prof in profiles:
        reqs = profile_requirements(prof)
        if not reqs:
            typer.echo(f"{prof.name}: nothing to download (model.kind = {prof.model.kind})")
            continue
        for req in reqs:
            typer.echo(f"{prof.name}: {req.field} <- {req.source}")
            try:
                path = fetch(req, profile_ref(prof), note=lambda line: typer.echo(f"  {line}"))
            except NetworkError:
                raise  # the server cannot be reached: every other download would fail the same way
            except L2DError as exc:
                failures.append(exc)
                continue
            typer.echo(f"  ok: {path} ({_size(path)})")
    if len(failures) == 1:
        raise failures[0]
    if failures:
        for exc in failures:
            typer.echo(f"  failed: {exc}", err=True)
        raise ModelError(f"{len(failures)} downloads failed (listed above); run the command again to resume")


@models_app.command("list")
def list_models(profile: ProfileOption = None) -> None:
    """Show, per profile, where each file comes from and whether it is on disk."""
    typer.echo(f"cache: {models_dir()}")
    profiles, _ = _profiles(profile)
    for prof in profiles:
        reqs = profile_requirements(prof)
        typer.echo(f"{prof.name}: " + ("random weights, nothing to download" if not reqs else ""))
        for req in reqs:
            try:
                path = resolve(req, profile_ref(prof))
                version = ""
                if isinstance(req.source, CivitaiSource):
                    version = f"  (civitai version {civitai_metadata(req.source).get('version_id', '?')})"
                typer.echo(f"  {req.field:26} {'ok':8} {_size(path):>12}  {path}{version}")
            except L2DError:
                typer.echo(f"  {req.field:26} {'missing':8} {'':>12}  {req.source}")


def _verify(req: Requirement, prof: Profile) -> str | None:
    """None when the file is there, readable and (if the profile gives one) has the right sha256."""
    try:
        path = resolve(req, profile_ref(prof))
    except L2DError as exc:
        return str(exc)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in (".safetensors", ".bin", ".ckpt"))
    fix = f"delete it and run '{download_command(profile_ref(prof))}'"
    for file in files:
        if file.suffix == ".safetensors":
            from safetensors import safe_open

            try:
                expected_size = _safetensors_size(file)
                if expected_size != file.stat().st_size:
                    return f"{file}: truncated ({file.stat().st_size} of {expected_size} bytes); {fix}"
                with safe_open(str(file), framework="pt") as f:
                    list(f.keys())
            except Exception as exc:  # json, struct and safetensors errors all mean an unusable file here
                return f"{file}: unreadable safetensors ({exc}); {fix}"
    if req.sha256 and path.is_file():
        actual = sha256_file(path)
        if actual != req.sha256.lower():
            return f"{path}: sha256 mismatch (expected {req.sha256.lower()}, got {actual}); {fix}"
    return None


def _safetensors_size(file: Path) -> int:
    """Size a safetensors file must have: 8 + header length + the end offset of its last tensor."""
    import json
    import struct

    with open(file, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return 8
        (n,) = struct.unpack("<Q", head)
        header = json.loads(f.read(n))
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    return 8 + n + max(ends, default=0)


@models_app.command("verify")
def verify(profile: ProfileOption = None) -> None:
    """Check that every file is present, complete, and matches its sha256 when the profile gives one."""
    profiles, problems = _profiles(profile)  # a broken profile counts as a problem
    for prof in profiles:
        for req in profile_requirements(prof):
            problem = _verify(req, prof)
            if problem:
                problems += 1
                typer.echo(f"{prof.name}: {problem}", err=True)
            else:
                typer.echo(f"{prof.name}: {req.field}: ok")
    if problems:
        raise ModelError(f"{problems} model file problem(s) (see above)")
