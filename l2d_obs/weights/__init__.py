"""Real weights: loaders for every file format a profile can name, the model cache and downloads.

``build_sd15_components(profile, device, dtype)`` is what the engine calls for ``model.kind = "sd15"``;
``check_profile_files(profile)`` lists what is missing for ``doctor``.
"""

from .assemble import build_sd15_components, check_profile_files

__all__ = ["build_sd15_components", "check_profile_files"]
