"""Style profiles: a TOML file per style, validated strictly at load.

Every error names the file, the field and the reason. Unknown keys are rejected (a typo must not
silently fall back to a default). User profiles (``$L2D_PROFILES_DIR`` or
``~/.config/l2d-obs/profiles``) override the shipped ones in the repository's ``profiles/`` by name.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .dtypes import DTYPE_HELP, parse_dtype
from .errors import ConfigError, ProfileError
from .paths import SHIPPED_PROFILES_DIR, user_profiles_dir


NOISE_MODES = ("fixed", "fresh")
MODEL_KINDS = ("tiny", "sd15")
DEPTH_ESTIMATORS = ("dpt-hybrid", "depth-anything-small", "dpt", "tiny")  # "dpt": any DPT folder named by depth.source
# A base trained for the few-step schedule itself (e.g. by `l2d-obs train`) needs no LCM-LoRA.
NO_LCM_LORA = "none"

# Ranges the engine really takes (checked here, so `profiles check`, `start` and `switch` agree).
MAX_SEED = 2**63 - 1  # torch generators take a signed 64-bit seed
MAX_SIDE = 2048  # pixels; SD1.5's UNet at 2048x2048 already needs tens of GiB for the KV cache
MAX_INFERENCE_STEPS = 50  # the LCM scheduler's original_inference_steps: a finer grid is refused by it
MAX_WINDOW = 32  # the longest positional table of any model l2d-obs builds (Live2Diff's has 24)


@dataclass(frozen=True)
class LoraSpec:
    source: str
    scale: float = 1.0
    name: str = ""
    sha256: str | None = None  # checked on download and by 'models verify'


@dataclass(frozen=True)
class ModelSpec:
    """Where the weights come from. ``kind = "tiny"`` builds a small random model from a config."""

    kind: str = "sd15"
    base: str = "hf:stable-diffusion-v1-5/stable-diffusion-v1-5"
    motion: str = "hf:Leoxing/Live2Diff/live2diff.ckpt"
    lcm_lora: str = "hf:latent-consistency/lcm-lora-sdv1-5/pytorch_lora_weights.safetensors"
    vae: str = "hf:madebyollin/taesd"
    loras: tuple[LoraSpec, ...] = ()
    clip_skip: int = 2
    weights_seed: int = 0  # tiny models only: seed of their random weights
    # A diffusers-layout config folder for a single-file base (default: the shipped SD1.5 configs).
    base_config: str | None = None
    base_sha256: str | None = None
    motion_sha256: str | None = None
    lcm_lora_sha256: str | None = None
    lcm_lora_scale: float = 1.0
    motion_heads: int = 8  # attention heads of the motion modules (8 in AnimateDiff v1 and Live2Diff)


@dataclass(frozen=True)
class DepthSpec:
    enabled: bool = True
    estimator: str = "dpt-hybrid"
    source: str | None = None  # overrides the estimator's default repository (a transformers folder)


@dataclass(frozen=True)
class EngineSpec:
    """Engine options a profile may pin; command-line flags override them."""

    device: str | None = None  # "cuda", "cuda:1", "mps", "cpu"; None: the best one present
    dtype: str | None = None  # "fp16", "bf16", "fp32"; None: fp16 on GPUs, fp32 on the CPU
    pipelined: bool = True  # stream batch (T rows per UNet call); False: each frame through its T steps
    # Speed options (engine/accel.py); None: on with CUDA, off elsewhere. The command line overrides them.
    compile: bool | None = None  # torch.compile the stream-batch UNet (every variant warmed at start)
    cuda_graphs: bool | None = None  # torch.compile's reduce-overhead mode (needs compile and CUDA)
    channels_last: bool | None = None  # channels-last memory format for the UNet and the VAE
    # Similarity filter: a camera frame nearly equal to the last one pushed is not run through the model;
    # the last output is repeated (at most max_skips times in a row). A skipped frame never touches the cache.
    similarity_filter: bool = False
    similarity_threshold: float = 0.98  # 1 - mean |difference| / 255 at or above which a frame is skipped
    max_skips: int = 10


@dataclass(frozen=True)
class Profile:
    name: str
    display_name: str
    prompt: str
    model: ModelSpec
    depth: DepthSpec
    trigger_words: tuple[str, ...] = ()
    t_index_list: tuple[int, ...] = (32, 45)
    num_inference_steps: int = 50
    seed: int = 42
    noise: str = "fixed"
    width: int = 512
    height: int = 512
    window: int = 16
    warmup: int = 8
    engine: EngineSpec = EngineSpec()
    prompt_template: str = ""  # the prompt as written in the file, before {trigger_words} is filled in
    source_path: Path | None = field(default=None, compare=False)

    @property
    def steps(self) -> int:
        return len(self.t_index_list)

    @property
    def strength(self) -> float:
        """StreamDiffusion-style img2img strength implied by the first denoising index on the grid."""
        return implied_strength(self.t_index_list, self.num_inference_steps)


def implied_strength(t_index_list: tuple[int, ...] | list[int], num_inference_steps: int) -> float:
    # Index i on an N-step grid starts denoising at 1 - i/N of the full noise schedule.
    return 1.0 - t_index_list[0] / num_inference_steps


# --- schema ------------------------------------------------------------------------------------

_TOP_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "display_name": str,
    "prompt": str,
    "trigger_words": list,
    "t_index_list": list,
    "num_inference_steps": int,
    "seed": int,
    "noise": str,
    "width": int,
    "height": int,
    "window": int,
    "warmup": int,
    "strength": (int, float),
    "model": dict,
    "depth": dict,
    "engine": dict,
}
_MODEL_KEYS: dict[str, type | tuple[type, ...]] = {
    "kind": str,
    "base": str,
    "motion": str,
    "lcm_lora": str,
    "vae": str,
    "loras": list,
    "clip_skip": int,
    "weights_seed": int,
    "base_config": str,
    "base_sha256": str,
    "motion_sha256": str,
    "lcm_lora_sha256": str,
    "lcm_lora_scale": (int, float),
    "motion_heads": int,
}
_LORA_KEYS: dict[str, type | tuple[type, ...]] = {"source": str, "scale": (int, float), "name": str, "sha256": str}
_DEPTH_KEYS: dict[str, type | tuple[type, ...]] = {"enabled": bool, "estimator": str, "source": str}
_ENGINE_KEYS: dict[str, type | tuple[type, ...]] = {
    "device": str, "dtype": str, "pipelined": bool, "compile": bool, "cuda_graphs": bool, "channels_last": bool,
    "similarity_filter": bool, "similarity_threshold": (int, float), "max_skips": int,
}
TRIGGER_PLACEHOLDER = "{trigger_words}"


def _type_name(t: type | tuple[type, ...]) -> str:
    names = {int: "integer", float: "number", str: "string", bool: "true/false", list: "list", dict: "table"}
    if isinstance(t, tuple):
        return " or ".join(names.get(x, x.__name__) for x in t)
    return names.get(t, t.__name__)


def _check_table(path: Path, prefix: str, table: dict[str, Any], schema: dict[str, Any]) -> None:
    for key, value in table.items():
        where = f"{prefix}{key}"
        if key not in schema:
            known = ", ".join(sorted(schema))
            raise ProfileError(f"{path}: field '{where}': unknown key (known keys: {known})")
        expected = schema[key]
        # bool is an int in Python; never accept it where a number is expected.
        if isinstance(value, bool) and expected is not bool:
            raise ProfileError(f"{path}: field '{where}': expected {_type_name(expected)}, got true/false")
        if not isinstance(value, expected):
            raise ProfileError(
                f"{path}: field '{where}': expected {_type_name(expected)}, got {type(value).__name__} {value!r}"
            )


def _fail(path: Path, field_name: str, reason: str) -> ProfileError:
    return ProfileError(f"{path}: field '{field_name}': {reason}")


def parse_profile(data: dict[str, Any], path: Path, default_name: str) -> Profile:
    """Validate a parsed TOML table and build a Profile. Raises ProfileError naming file and field."""
    _check_table(path, "", data, _TOP_KEYS)
    model_table = data.get("model", {})
    _check_table(path, "model.", model_table, _MODEL_KEYS)
    depth_table = data.get("depth", {})
    _check_table(path, "depth.", depth_table, _DEPTH_KEYS)

    loras: list[LoraSpec] = []
    for i, lora in enumerate(model_table.get("loras", [])):
        if not isinstance(lora, dict):
            raise _fail(path, f"model.loras[{i}]", "expected a table with 'source' and 'scale'")
        _check_table(path, f"model.loras[{i}].", lora, _LORA_KEYS)
        if "source" not in lora:
            raise _fail(path, f"model.loras[{i}].source", "missing")
        loras.append(
            LoraSpec(
                source=lora["source"],
                scale=float(lora.get("scale", 1.0)),
                name=lora.get("name", ""),
                sha256=lora.get("sha256"),
            )
        )

    model_kwargs = {k: v for k, v in model_table.items() if k != "loras"}
    if "lcm_lora_scale" in model_kwargs:
        model_kwargs["lcm_lora_scale"] = float(model_kwargs["lcm_lora_scale"])
    model = ModelSpec(**model_kwargs, loras=tuple(loras))
    if model.kind not in MODEL_KINDS:
        raise _fail(path, "model.kind", f"must be one of {', '.join(MODEL_KINDS)}, got {model.kind!r}")
    if model.clip_skip < 1:
        raise _fail(path, "model.clip_skip", "must be >= 1")
    if model.motion_heads < 1:
        raise _fail(path, "model.motion_heads", "must be >= 1")
    _check_sources(path, model, depth_table)

    depth = DepthSpec(**depth_table)
    engine = _parse_engine(path, data.get("engine", {}))
    if depth.estimator not in DEPTH_ESTIMATORS:
        raise _fail(path, "depth.estimator", f"must be one of {', '.join(DEPTH_ESTIMATORS)}, got {depth.estimator!r}")
    if depth.estimator == "dpt" and depth.enabled and not depth.source:
        raise _fail(path, "depth.source", "estimator 'dpt' loads the DPT folder named here; give its path")

    if "prompt" not in data or not data["prompt"].strip():
        raise _fail(path, "prompt", "missing or empty")
    trigger_words = data.get("trigger_words", [])
    for i, word in enumerate(trigger_words):
        if not isinstance(word, str) or not word.strip():
            raise _fail(path, f"trigger_words[{i}]", "must be a non-empty string")
    prompt = _expand_prompt(path, data["prompt"], trigger_words)

    t_index_list = data.get("t_index_list", list(Profile.t_index_list))
    num_steps = data.get("num_inference_steps", Profile.num_inference_steps)
    if not 1 <= num_steps <= MAX_INFERENCE_STEPS:
        raise _fail(path, "num_inference_steps", f"must be in 1..{MAX_INFERENCE_STEPS} (the LCM schedule's grid), got {num_steps}")
    if not t_index_list:
        raise _fail(path, "t_index_list", "is empty: give at least one denoising step index, e.g. [32, 45]")
    for i, idx in enumerate(t_index_list):
        if isinstance(idx, bool) or not isinstance(idx, int):
            raise _fail(path, f"t_index_list[{i}]", f"expected integer, got {idx!r}")
        if not 0 <= idx < num_steps:
            raise _fail(path, f"t_index_list[{i}]", f"{idx} is outside 0..{num_steps - 1} (num_inference_steps)")
    if list(t_index_list) != sorted(set(t_index_list)):
        raise _fail(path, "t_index_list", "must be strictly increasing (from most to least noise)")

    noise = data.get("noise", Profile.noise)
    if noise not in NOISE_MODES:
        raise _fail(path, "noise", f"must be one of {', '.join(NOISE_MODES)}, got {noise!r}")

    width = data.get("width", Profile.width)
    height = data.get("height", Profile.height)
    for name, value in (("width", width), ("height", height)):
        if not 8 <= value <= MAX_SIDE or value % 8:
            raise _fail(path, name, f"must be a multiple of 8 in 8..{MAX_SIDE} (the VAE works in 8x8 blocks), got {value}")

    if "strength" in data:
        _check_strength(path, float(data["strength"]), t_index_list, num_steps)

    window = data.get("window", Profile.window)
    warmup = data.get("warmup", Profile.warmup)
    if not 2 <= window <= MAX_WINDOW:
        raise _fail(path, "window", f"must be in 2..{MAX_WINDOW} (and at most the motion modules' positions), got {window}")
    if warmup < 1:
        raise _fail(path, "warmup", f"must be >= 1, got {warmup}")
    if warmup >= window:
        raise _fail(path, "warmup", f"must be smaller than window ({window}), got {warmup}")

    seed = data.get("seed", Profile.seed)
    if not 0 <= seed <= MAX_SEED:
        raise _fail(path, "seed", f"must be in 0..{MAX_SEED} (2**63-1), got {seed}")
    if not 0 <= model.weights_seed <= MAX_SEED:
        raise _fail(path, "model.weights_seed", f"must be in 0..{MAX_SEED} (2**63-1), got {model.weights_seed}")

    return Profile(
        name=data.get("name", default_name),
        display_name=data.get("display_name", data.get("name", default_name)),
        prompt=prompt,
        prompt_template=data["prompt"],
        engine=engine,
        model=model,
        depth=depth,
        trigger_words=tuple(trigger_words),
        t_index_list=tuple(t_index_list),
        num_inference_steps=num_steps,
        seed=seed,
        noise=noise,
        width=width,
        height=height,
        window=window,
        warmup=warmup,
        source_path=path,
    )


def _parse_engine(path: Path, table: dict[str, Any]) -> EngineSpec:
    _check_table(path, "engine.", table, _ENGINE_KEYS)
    engine = EngineSpec(**table)
    if not 0.0 < engine.similarity_threshold <= 1.0:
        raise _fail(path, "engine.similarity_threshold", f"must be in (0, 1], got {engine.similarity_threshold}")
    if engine.max_skips < 1:
        raise _fail(path, "engine.max_skips", f"must be at least 1, got {engine.max_skips}")
    engine = replace(engine, similarity_threshold=float(engine.similarity_threshold))
    if engine.device is not None and not re.fullmatch(r"cpu|mps|cuda(:\d+)?", engine.device):
        raise _fail(path, "engine.device", f"must be cpu, mps, cuda or cuda:N, got {engine.device!r}")
    if engine.dtype is not None:
        try:
            engine = replace(engine, dtype=parse_dtype(engine.dtype))  # one spelling from here on
        except ConfigError:
            raise _fail(path, "engine.dtype", f"must be one of {DTYPE_HELP}, got {engine.dtype!r}") from None
    return engine


def _check_sources(path: Path, model: ModelSpec, depth_table: dict[str, Any]) -> None:
    """Source strings and sha256 values must parse now, not when a download starts."""
    from .weights.hashing import is_sha256
    from .weights.sources import parse_source

    fields = [("model.base", model.base), ("model.motion", model.motion), ("model.vae", model.vae)]
    if model.lcm_lora != NO_LCM_LORA:
        fields.append(("model.lcm_lora", model.lcm_lora))
    fields += [(f"model.loras[{i}].source", lora.source) for i, lora in enumerate(model.loras)]
    if "source" in depth_table:
        fields.append(("depth.source", depth_table["source"]))
    for name, text in fields:
        try:
            parse_source(text)
        except ConfigError as exc:
            raise _fail(path, name, str(exc)) from None
    hashes = [(f"model.{k}", getattr(model, k)) for k in ("base_sha256", "motion_sha256", "lcm_lora_sha256")]
    hashes += [(f"model.loras[{i}].sha256", lora.sha256) for i, lora in enumerate(model.loras)]
    for name, value in hashes:
        if value is not None and not is_sha256(value.lower()):
            raise _fail(path, name, f"not a sha256 (64 hex digits): {value!r}")


def _expand_prompt(path: Path, template: str, trigger_words: list[str]) -> str:
    """Fill ``{trigger_words}``; without the placeholder every trigger word must be written in the prompt.

    A style LoRA or DreamBooth model only shows its style when its trigger words are in the prompt, so a
    profile that declares them must use them.
    """
    placeholders = set(re.findall(r"\{([^{}]*)\}", template))
    unknown = placeholders - {TRIGGER_PLACEHOLDER.strip("{}")}
    if unknown:
        raise _fail(path, "prompt", f"unknown placeholder(s) {', '.join('{' + u + '}' for u in sorted(unknown))}; only {TRIGGER_PLACEHOLDER} is known")
    if TRIGGER_PLACEHOLDER in template:
        if not trigger_words:
            raise _fail(path, "prompt", f"uses {TRIGGER_PLACEHOLDER} but trigger_words is empty")
        return template.replace(TRIGGER_PLACEHOLDER, ", ".join(trigger_words))
    lowered = template.lower()
    missing = [w for w in trigger_words if w.lower() not in lowered]
    if missing:
        raise _fail(
            path,
            "prompt",
            f"does not contain the trigger word(s) {', '.join(map(repr, missing))}; add them or write {TRIGGER_PLACEHOLDER}",
        )
    return template


def _check_strength(path: Path, strength: float, t_index_list: list[int], num_steps: int) -> None:
    # strength is not a free knob: it is fixed by t_index_list[0]; a stated value must agree with it.
    if not 0.0 < strength <= 1.0:
        raise _fail(path, "strength", f"must be in (0, 1], got {strength}")
    implied = implied_strength(t_index_list, num_steps)
    if abs(strength - implied) > 0.5 / num_steps:
        raise _fail(
            path,
            "strength",
            f"{strength} contradicts t_index_list[0]={t_index_list[0]} on a {num_steps}-step grid, which means "
            f"strength {implied:.3f}; change one of them",
        )


def load_profile_file(path: Path) -> Profile:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such profile file") from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read profile: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from None
    return parse_profile(data, path, default_name=path.stem)


def profile_search_path() -> list[Path]:
    """Directories searched for profiles, highest priority first."""
    return [user_profiles_dir(), SHIPPED_PROFILES_DIR]


def available_profiles() -> dict[str, Path]:
    """Profile name -> file, user profiles overriding shipped ones with the same name."""
    found: dict[str, Path] = {}
    for directory in reversed(profile_search_path()):
        if directory.is_dir():
            for file in sorted(directory.glob("*.toml")):
                found[file.stem] = file
    return dict(sorted(found.items()))


def load_profile(name_or_path: str) -> Profile:
    """Load a profile by name (searching user then shipped profiles) or by path to a .toml file."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or os.sep in name_or_path:
        return load_profile_file(candidate)
    profiles = available_profiles()
    if name_or_path not in profiles:
        known = ", ".join(profiles) or "none"
        raise ProfileError(f"unknown profile '{name_or_path}' (available: {known}); see 'l2d-obs profiles list'")
    return load_profile_file(profiles[name_or_path])
