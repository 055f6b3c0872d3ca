"""Real weights: loaders for every file format a profile can name, the model cache and downloads.

``build_sd15_components(profile, device, dtype)`` is what the engine calls for ``model.kind = "sd15"``;
``check_profile_files(profile)`` lists what is missing for ``doctor``. Both are imported on first use so
that parsing a profile (which checks source strings with ``weights.sources``) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .assemble import build_sd15_components, check_profile_files, check_window_fits

__all__ = ["build_sd15_components", "check_profile_files", "check_window_fits"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import assemble

        return getattr(assemble, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
