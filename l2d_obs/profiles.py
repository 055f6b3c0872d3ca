"""Style profiles: a TOML file per style, validated strictly at load.

The schema is written once, in the dataclasses below: each field's type hint, default and ``setting``
metadata (help, range, choices, checks) drive parsing and validation (``tomlschema``), ``profiles show``
and the key reference (``profiles keys``). Adding a field is adding it here (and using it). What one
field cannot say alone (t_index_list against num_inference_steps, warmup < window, trigger words in the
prompt, a stated strength) is checked in ``parse_profile``.

Every error names the file, the field and the reason. Unknown keys are rejected (a typo must not
silently fall back to a default). User profiles (``paths.user_profiles_dir()``: ``$L2D_PROFILES_DIR`` or
``~/.config/l2d-obs/profiles``) override the shipped ones in the repository's ``profiles/`` by name.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .dtypes import DTYPE_HELP, parse_dtype
from .errors import ConfigError, ProfileError
from .paths import SHIPPED_PROFILES_DIR, user_profiles_dir
from .tomlschema import SchemaProblem, build, dump, reference, setting

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
TRIGGER_PLACEHOLDER = "{trigger_words}"


def _weight_source(text: str) -> str | None:
    """Source strings must parse now, not when a download starts."""
    from .weights.sources import parse_source  # pure syntax: no torch, no loaders

    try:
        parse_source(text)
    except ConfigError as exc:
        return str(exc)
    return None


def _weight_source_or_none(text: str) -> str | None:
    return None if text == NO_LCM_LORA else _weight_source(text)


def _sha256(text: str) -> str | None:
    from .weights.hashing import is_sha256

    return None if is_sha256(text.lower()) else f"not a sha256 (64 hex digits): {text!r}"


def _dtype(text: str) -> str:
    try:
        return parse_dtype(text)  # one spelling from here on
    except ConfigError:
        raise ValueError(f"one of {DTYPE_HELP}") from None


_SEED = dict(range=(0, MAX_SEED), why="2**63-1")
_SIDE = dict(range=(8, MAX_SIDE), multiple_of=8, why="the VAE works in 8x8 blocks")
_SHA = dict(check=_sha256, help="checked on download and by 'models verify'")


@dataclass(frozen=True)
class LoraSpec:
    source: str = setting(help="where the LoRA file comes from (hf:, civitai:, a path)", check=_weight_source)
    scale: float = setting(1.0, help="strength it is fused with")
    name: str = setting("", help="a name for messages and the cache")
    sha256: str | None = setting(None, **_SHA)


@dataclass(frozen=True)
class ModelSpec:
    """Where the weights come from. ``kind = "tiny"`` builds a small random model from a config."""

    kind: str = setting("sd15", choices=MODEL_KINDS, help="sd15: real weights; tiny: seeded random weights (tests)")
    base: str = setting("hf:stable-diffusion-v1-5/stable-diffusion-v1-5", check=_weight_source,
                        help="diffusers folder or single-file .safetensors/.ckpt")
    motion: str = setting("hf:Leoxing/Live2Diff/live2diff.ckpt", check=_weight_source,
                          help="Live2Diff/AnimateDiff motion modules")
    lcm_lora: str = setting("hf:latent-consistency/lcm-lora-sdv1-5/pytorch_lora_weights.safetensors",
                            check=_weight_source_or_none,
                            help=f'"{NO_LCM_LORA}": a base trained for the few-step schedule itself')
    vae: str = setting("hf:madebyollin/taesd", check=_weight_source, help="TAESD folder")
    loras: tuple[LoraSpec, ...] = setting((), help="style LoRAs, fused in order")
    clip_skip: int = setting(2, range=(1, None), help="1 = last CLIP layer, 2 = penultimate")
    weights_seed: int = setting(0, **_SEED, help="tiny models only: seed of their random weights")
    # A diffusers-layout config folder for a single-file base (default: the shipped SD1.5 configs).
    base_config: str | None = setting(None, help="diffusers config folder for a single-file base")
    base_sha256: str | None = setting(None, **_SHA)
    motion_sha256: str | None = setting(None, **_SHA)
    lcm_lora_sha256: str | None = setting(None, **_SHA)
    lcm_lora_scale: float = setting(1.0, help="strength the LCM-LoRA is fused with")
    motion_heads: int = setting(8, range=(1, None), help="attention heads of the motion modules (8 in AnimateDiff v1 and Live2Diff)")


@dataclass(frozen=True)
class DepthSpec:
    enabled: bool = setting(True, help="depth prior (estimator + E_cond)")
    estimator: str = setting("dpt-hybrid", choices=DEPTH_ESTIMATORS,
                             help="dpt: the DPT folder named by source; tiny: tests")
    source: str | None = setting(None, check=_weight_source, help="overrides the estimator's default repository (a transformers folder)")


@dataclass(frozen=True)
class EngineSpec:
    """Engine options a profile may pin; command-line flags override them."""

    device: str | None = setting(None, pattern=r"cpu|mps|cuda(:\d+)?", pattern_words="cpu, mps, cuda or cuda:N",
                                 help="default: the best one present")
    dtype: str | None = setting(None, convert=_dtype, help=f"{DTYPE_HELP}; default: fp16 on GPUs, fp32 on the CPU")
    pipelined: bool = setting(True, help="stream batch (T rows per UNet call); false: each frame through its T steps")
    # Speed options (engine/accel.py); None: on with CUDA, off elsewhere. The command line overrides them.
    compile: bool | None = setting(None, help="torch.compile the stream-batch UNet (every variant warmed at start)")
    cuda_graphs: bool | None = setting(None, help="torch.compile's reduce-overhead mode (needs compile and CUDA)")
    channels_last: bool | None = setting(None, help="channels-last memory format for the UNet and the VAE")
    overlap: bool | None = setting(None, help="encode the next frame on a second CUDA stream while the UNet runs")
    # Similarity filter: a camera frame nearly equal to the last one pushed is not run through the model;
    # the last output is repeated (at most max_skips times in a row). A skipped frame never touches the cache.
    similarity_filter: bool = setting(False, help="repeat the last output for a nearly unchanged camera frame")
    similarity_threshold: float = setting(0.98, range=(0.0, 1.0), open_low=True,
                                          help="1 - mean |difference| / 255 at or above which a frame is skipped")
    max_skips: int = setting(10, range=(1, None), help="frames skipped in a row at most")


@dataclass(frozen=True, kw_only=True)  # keywords only: fields stay in the order a profile file reads
class Profile:
    name: str = setting("", help="default: the file name without .toml")
    display_name: str = setting("", help="shown by 'profiles list' and the daemon (default: name)")
    prompt: str = setting(help=f"{TRIGGER_PLACEHOLDER} is replaced by trigger_words, joined with ', '")
    trigger_words: tuple[str, ...] = setting((), help="words the style's model needs in the prompt")
    t_index_list: tuple[int, ...] = setting((32, 45), help="denoising steps on the num_inference_steps grid, increasing")
    num_inference_steps: int = setting(50, range=(1, MAX_INFERENCE_STEPS), why="the LCM schedule's grid",
                                       help="N: the grid t_index_list indexes")
    stated_strength: float | None = setting(None, key="strength", range=(0.0, 1.0), open_low=True, compare=False,
                                            help="optional; must agree with t_index_list[0] (1 - index/steps)")
    seed: int = setting(42, **_SEED, help="noise seed")
    noise: str = setting("fixed", choices=NOISE_MODES, help="fixed: the same noise every frame; fresh: new noise per frame")
    width: int = setting(512, **_SIDE, help="pixels the engine works at")
    height: int = setting(512, **_SIDE, help="pixels the engine works at")
    window: int = setting(16, range=(2, MAX_WINDOW), why="and at most the motion modules' positions",
                          help="L: frames a streaming frame attends to")
    warmup: int = setting(8, range=(1, None), help="Lw: warmup frames, always kept; must be < window")
    model: ModelSpec = setting(ModelSpec(), help="where the weights come from")
    depth: DepthSpec = setting(DepthSpec(), help="the depth prior")
    engine: EngineSpec = setting(EngineSpec(), help="optional; command-line flags override these")
    prompt_template: str = setting("", toml=False)  # the prompt as written in the file, before {trigger_words}
    source_path: Path | None = setting(None, toml=False, compare=False)

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


def _fail(path: Path, field_name: str, reason: str) -> ProfileError:
    return ProfileError(f"{path}: field '{field_name}': {reason}")


def parse_profile(data: dict[str, Any], path: Path, default_name: str) -> Profile:
    """Validate a parsed TOML table and build a Profile. Raises ProfileError naming file and field."""
    try:
        profile = build(Profile, data, source_path=path)
    except SchemaProblem as problem:
        raise _fail(path, problem.where, problem.reason) from None
    name = profile.name or default_name
    profile = replace(profile, name=name, display_name=profile.display_name or name)

    depth = profile.depth
    if depth.estimator == "dpt" and depth.enabled and not depth.source:
        raise _fail(path, "depth.source", "estimator 'dpt' loads the DPT folder named here; give its path")

    if not profile.prompt.strip():
        raise _fail(path, "prompt", "missing or empty")
    for i, word in enumerate(profile.trigger_words):
        if not word.strip():
            raise _fail(path, f"trigger_words[{i}]", "must be a non-empty string")
    profile = replace(profile, prompt=_expand_prompt(path, profile.prompt, list(profile.trigger_words)),
                      prompt_template=profile.prompt)

    t_index_list, num_steps = profile.t_index_list, profile.num_inference_steps
    if not t_index_list:
        raise _fail(path, "t_index_list", "is empty: give at least one denoising step index, e.g. [32, 45]")
    for i, idx in enumerate(t_index_list):
        if not 0 <= idx < num_steps:
            raise _fail(path, f"t_index_list[{i}]", f"{idx} is outside 0..{num_steps - 1} (num_inference_steps)")
    if list(t_index_list) != sorted(set(t_index_list)):
        raise _fail(path, "t_index_list", "must be strictly increasing (from most to least noise)")
    if profile.stated_strength is not None:
        _check_strength(path, profile.stated_strength, list(t_index_list), num_steps)
    if profile.warmup >= profile.window:
        raise _fail(path, "warmup", f"must be smaller than window ({profile.window}), got {profile.warmup}")
    return profile


def profile_toml(profile: Profile) -> str:
    """The profile as a TOML file with every default written out (``profiles show``); it loads back
    to an equal profile."""
    written = replace(profile, prompt=profile.prompt_template or profile.prompt)
    return "\n".join(dump(written)) + "\n"


def profile_reference() -> str:
    """Every key a profile may have: type, default, rule and meaning, read off the dataclasses."""
    return "\n".join(reference(Profile)) + "\n"


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
