"""Real weights: loaders for every file format a profile can name, the model cache and downloads.

``assemble.build_sd15_components(profile, device, dtype)`` builds the components of a
``model.kind = "sd15"`` profile (``l2d_obs.factory`` calls it); ``assemble.check_profile_files(profile)``
lists what is missing for ``doctor``. This package module imports nothing, so the pure parts
(``sources``, ``hashing``: source strings and sha256 values, which profiles check at load) come
without torch and without the loaders.
"""
