"""The packages only `l2d-obs train` needs (the `train` extra), imported with a one-line error."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import ConfigError

_WHY = {
    "peft": "to put a LoRA on the UNet (a `lora` stage)",
    "skimage": "for the training pictures bundled in scikit-image",
    "skimage.data": "for the training pictures bundled in scikit-image",
    "matplotlib": "to draw the loss curve",
}


def require(module: str) -> ModuleType:
    """``import module``, or a ConfigError that says which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        why = _WHY.get(module, f"({package})")
        raise ConfigError(f"l2d-obs train needs {package} {why}: pip install 'l2d-obs[train]'") from None
