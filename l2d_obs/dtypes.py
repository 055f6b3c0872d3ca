"""Engine precision, spelled one way everywhere: ``fp16``, ``bf16`` or ``fp32``.

Every ``--dtype`` option and a profile's ``engine.dtype`` go through ``parse_dtype``, which also takes
the usual other names (float16/half, bfloat16, float32/float). No torch here: the engine maps the
canonical name to a torch dtype.
"""

from __future__ import annotations

from .errors import ConfigError

DTYPES = ("fp16", "bf16", "fp32")
_ALIASES = {
    "fp16": "fp16", "float16": "fp16", "half": "fp16",
    "bf16": "bf16", "bfloat16": "bf16",
    "fp32": "fp32", "float32": "fp32", "float": "fp32",
}
# What --dtype options say in their help (they add their default).
DTYPE_HELP = "fp16, bf16 or fp32 (float16/half, bfloat16, float32/float also work)"
_CHOICES = "fp16 (or float16, half), bf16 (or bfloat16), fp32 (or float32, float)"


def parse_dtype(value: str | None, option: str = "--dtype") -> str | None:
    """The canonical name of a precision (None stays None: the engine's default); a one-line
    ConfigError naming ``option`` for anything else."""
    if value is None:
        return None
    name = _ALIASES.get(value.strip().lower().removeprefix("torch."))
    if name is None:
        raise ConfigError(f"{option}: unknown precision {value!r}; use {_CHOICES}")
    return name
