"""Reading checkpoint files and loading them into models without ever leaving a half-loaded model.

Safetensors are read as they are; pickled files (.ckpt/.pt/.pth/.bin) only with
``torch.load(weights_only=True)``, so a checkpoint can never run code. Loading into a model is two steps:
``check_state_dict`` compares every key and shape with the model and raises one CheckpointError that lists
what is wrong; only a state dict that passed is handed to ``load_state_dict``.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from ..errors import CheckpointError

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
# Wrappers training scripts put around the weights (Lightning, DeepSpeed, the Live2Diff/AnimateDiff trainers).
_WRAPPER_KEYS = ("state_dict", "module", "model")


def _short_list(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" ... (+{len(items) - limit} more)" if len(items) > limit else "")


def read_state_dict(path: Path) -> StateDict:
    """All tensors of a checkpoint file as a flat name -> tensor dict on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return _read_safetensors(path)
    if suffix in PICKLE_SUFFIXES:
        return _read_pickle(path)
    raise CheckpointError(
        f"{path}: unknown checkpoint format '{suffix or '(none)'}'; use .safetensors (preferred) or .ckpt/.pt/.bin"
    )


def _read_safetensors(path: Path) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt?): {exc}") from None


def _read_pickle(path: Path) -> StateDict:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses arbitrary objects: this is the safety net, not a bug to work around.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsupported object"
        raise CheckpointError(
            f"{path}: refused to load: the file contains Python objects beyond tensors ({first}); "
            "get a .safetensors version of it"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {exc}") from None
    return _flatten_checkpoint(obj, path)


def _flatten_checkpoint(obj: object, path: Path) -> StateDict:
    for _ in range(3):  # unwrap {"state_dict": {...}} and similar, a few levels at most
        if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: not a checkpoint: expected a dict of tensors, got {type(obj).__name__}")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: not a checkpoint: it holds no tensors")
    return tensors


def check_state_dict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], file: Path | str, what: str
) -> None:
    """Raise CheckpointError unless ``state_dict`` has exactly the model's keys with the model's shapes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong_shape = sorted(
        f"{k} {tuple(state_dict[k].shape)} != {tuple(expected[k].shape)}"
        for k in set(expected) & set(state_dict)
        if tuple(state_dict[k].shape) != tuple(expected[k].shape)
    )
    problems = mismatch_problems(wrong_shape, missing, unexpected)
    if problems:
        raise CheckpointError(f"{file}: does not match the {what} architecture: " + "; ".join(problems))


def mismatch_problems(wrong_shape: list[str], missing: list[str] | None = None, unexpected: list[str] | None = None) -> list[str]:
    """One phrase per kind of mismatch between a file's tensors and a model's, for a one-line error."""
    problems = []
    if wrong_shape:
        problems.append(f"{len(wrong_shape)} tensor(s) of the wrong shape: {_short_list(wrong_shape)}")
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_short_list(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_short_list(unexpected)}")
    return problems


def load_checked(model: nn.Module, state_dict: Mapping[str, torch.Tensor], file: Path | str, what: str) -> None:
    """Check every key and shape first, then copy; a failed check leaves ``model`` untouched."""
    check_state_dict(model, state_dict, file, what)
    model.load_state_dict(dict(state_dict), strict=True)
