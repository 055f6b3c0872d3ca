"""sha256 of weight files, streamed (files are gigabytes)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ..errors import CheckpointError

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def is_sha256(text: str) -> bool:
    return bool(_HEX64.match(text))


def sha256_file(path: Path, chunk_size: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str, fix_command: str) -> None:
    actual = sha256_file(path)
    if actual != expected.lower():
        raise CheckpointError(
            f"{path}: sha256 mismatch (expected {expected.lower()}, got {actual}): the file is corrupt or a "
            f"different version; delete it and run '{fix_command}'"
        )
