"""A training run's config: one TOML file, validated strictly (unknown keys are errors, like profiles).

    [run]       name, style, size, seed, prompt, display_name, init (a previous run to start from)
    [data]      frame_size, crop, clip_length, warmup, kinds
    [schedule]  t_index_list, num_inference_steps, t_jitter (the engine's few-step LCM timesteps)
    [checkpoint] every
    [[stages]]  name, steps, lr, batch (+ rank for "lora", pixel_loss for the denoising stages,
                l1, mse, chroma, anchor for a "vae" stage)

Stages run in order; see ``stages.py`` for what each one trains.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

STAGE_NAMES = ("vae", "depth_estimator", "image", "motion", "depth", "joint", "lora")
# Stages that need the motion UNet (the image model is inflated before the first of them).
MOTION_STAGES = ("motion", "depth", "joint", "lora")
CLIP_KINDS = ("photo", "scene")


@dataclass(frozen=True)
class StageConfig:
    name: str
    steps: int
    lr: float
    batch: int = 1
    rank: int = 16  # LoRA rank ("lora" stage only)
    pixel_loss: float = 0.0  # weight of an L1 loss on decoded pixels of the final step (denoising stages)
    # "vae" stage on top of run.init: weight of an MSE holding the encoder's latents to the init model's,
    # so a retrained autoencoder keeps the latent space its UNet was trained in
    anchor: float = 0.0
    # "vae" stage reconstruction loss: l1 * L1 + mse * MSE + chroma * MSE of the two opponent colour axes
    # (green-magenta, blue-yellow); without chroma a small autoencoder trained on these clips spends
    # its four latent channels on luminance and one colour axis (docs/model-card.md)
    l1: float = 1.0
    mse: float = 0.0
    chroma: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    name: str
    style: str
    size: str = "small"
    seed: int = 0
    prompt: str = "a styled video"
    display_name: str = ""
    init: str | None = None  # a previous run's output folder (its exported model) to start from
    frame_size: int = 128
    crop: int = 64
    clip_length: int = 16
    warmup: int = 8
    kinds: tuple[str, ...] = CLIP_KINDS
    sensor_noise: float = 0.0  # max std (8-bit levels) of per-frame camera noise on inputs; targets stay clean
    t_index_list: tuple[int, ...] = (35, 45)
    num_inference_steps: int = 50
    t_jitter: int = 3
    checkpoint_every: int = 100
    stages: tuple[StageConfig, ...] = field(default_factory=tuple)
    source_path: Path | None = field(default=None, compare=False)

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    def fingerprint(self) -> str:
        """What a checkpoint must match to be resumed: everything that changes the result."""
        data = asdict(self)
        data.pop("source_path")
        data.pop("checkpoint_every")  # how often to save does not change what is trained
        if not data["sensor_noise"]:
            data.pop("sensor_noise")  # added later: runs without it keep the fingerprints they had
        for stage in data["stages"]:
            for key, default in _STAGE_DEFAULTS_ADDED_LATER.items():
                if stage[key] == default:
                    stage.pop(key)  # likewise
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


_VAE_LOSS_KEYS = ("l1", "mse", "chroma")
# Stage keys added after runs were shipped: left out of the fingerprint at their default.
_STAGE_DEFAULTS_ADDED_LATER = {name: getattr(StageConfig, name) for name in ("anchor", *_VAE_LOSS_KEYS)}

_SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "run": {"name": str, "style": str, "size": str, "seed": int, "prompt": str, "display_name": str, "init": str},
    "data": {"frame_size": int, "crop": int, "clip_length": int, "warmup": int, "kinds": list,
             "sensor_noise": (int, float)},
    "schedule": {"t_index_list": list, "num_inference_steps": int, "t_jitter": int},
    "checkpoint": {"every": int},
}
_STAGE_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str, "steps": int, "lr": (int, float), "batch": int, "rank": int, "pixel_loss": (int, float), "anchor": (int, float),
    "l1": (int, float), "mse": (int, float), "chroma": (int, float),
}  # fmt: skip


def _check(path: Path, where: str, table: Any, schema: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{where}] must be a table")
    for key, value in table.items():
        if key not in schema:
            raise ConfigError(f"{path}: unknown key '{where}.{key}' (known: {', '.join(sorted(schema))})")
        expected = schema[key]
        if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
            raise ConfigError(f"{path}: '{where}.{key}' has the wrong type ({type(value).__name__} {value!r})")
    return table


def parse_train_config(data: dict[str, Any], path: Path) -> TrainConfig:
    from .stylize import STYLES
    from .sizes import SIZES

    for key in data:
        if key not in (*_SCHEMA, "stages"):
            raise ConfigError(f"{path}: unknown table or key '{key}' (known: {', '.join([*_SCHEMA, 'stages'])})")
    tables = {name: _check(path, name, data.get(name, {}), schema) for name, schema in _SCHEMA.items()}
    run, d, sched = tables["run"], tables["data"], tables["schedule"]
    if "name" not in run or "style" not in run:
        raise ConfigError(f"{path}: [run] needs 'name' and 'style'")
    if run["style"] not in STYLES:
        raise ConfigError(f"{path}: 'run.style' must be one of {', '.join(STYLES)}, got {run['style']!r}")
    if run.get("size", "small") not in SIZES:
        raise ConfigError(f"{path}: 'run.size' must be one of {', '.join(SIZES)}, got {run.get('size')!r}")
    stages_raw = data.get("stages", [])
    if not isinstance(stages_raw, list) or not stages_raw:
        raise ConfigError(f"{path}: no [[stages]]: give at least one, e.g. name = \"image\", steps = 100, lr = 1e-3")
    stages = []
    for i, raw in enumerate(stages_raw):
        table = _check(path, f"stages[{i}]", raw, _STAGE_KEYS)
        for required in ("name", "steps", "lr"):
            if required not in table:
                raise ConfigError(f"{path}: stages[{i}] needs '{required}'")
        if table["name"] not in STAGE_NAMES:
            raise ConfigError(f"{path}: stages[{i}].name must be one of {', '.join(STAGE_NAMES)}, got {table['name']!r}")
        if table["steps"] < 1 or table.get("batch", 1) < 1 or table.get("rank", 16) < 1 or not table["lr"] > 0:
            raise ConfigError(f"{path}: stages[{i}]: steps, batch and rank must be >= 1 and lr > 0")
        if table.get("anchor", 0) and (table["name"] != "vae" or "init" not in run):
            raise ConfigError(f"{path}: stages[{i}].anchor holds a retrained autoencoder to run.init's: only for a 'vae' stage with run.init set")
        if table.get("anchor", 0) < 0:
            raise ConfigError(f"{path}: stages[{i}].anchor must be >= 0")
        losses = {key: float(table[key]) for key in _VAE_LOSS_KEYS if key in table}
        if losses and table["name"] != "vae":
            raise ConfigError(f"{path}: stages[{i}]: {', '.join(losses)} weigh the autoencoder's reconstruction: only for a 'vae' stage")
        weights = {**{key: _STAGE_DEFAULTS_ADDED_LATER[key] for key in _VAE_LOSS_KEYS}, **losses}
        if any(v < 0 for v in weights.values()) or not any(weights.values()):
            raise ConfigError(f"{path}: stages[{i}]: l1, mse and chroma must be >= 0 and not all 0")
        stages.append(StageConfig(**{**table, **losses, "lr": float(table["lr"]), "pixel_loss": float(table.get("pixel_loss", 0.0)),
                                     "anchor": float(table.get("anchor", 0.0))}))  # fmt: skip
    if any(s.name == "lora" for s in stages) and "init" not in run:
        raise ConfigError(f"{path}: a 'lora' stage trains on top of a model: set run.init to that run's output folder")
    kinds = tuple(d.get("kinds", CLIP_KINDS))
    if not kinds or any(k not in CLIP_KINDS for k in kinds):
        raise ConfigError(f"{path}: 'data.kinds' must list some of {', '.join(CLIP_KINDS)}, got {list(kinds)}")
    config = TrainConfig(
        name=run["name"],
        style=run["style"],
        size=run.get("size", "small"),
        seed=run.get("seed", 0),
        prompt=run.get("prompt", TrainConfig.prompt),
        display_name=run.get("display_name", run["name"]),
        init=run.get("init"),
        frame_size=d.get("frame_size", TrainConfig.frame_size),
        crop=d.get("crop", TrainConfig.crop),
        clip_length=d.get("clip_length", TrainConfig.clip_length),
        warmup=d.get("warmup", TrainConfig.warmup),
        sensor_noise=float(d.get("sensor_noise", TrainConfig.sensor_noise)),
        kinds=kinds,
        t_index_list=tuple(sched.get("t_index_list", TrainConfig.t_index_list)),
        num_inference_steps=sched.get("num_inference_steps", TrainConfig.num_inference_steps),
        t_jitter=sched.get("t_jitter", TrainConfig.t_jitter),
        checkpoint_every=tables["checkpoint"].get("every", TrainConfig.checkpoint_every),
        stages=tuple(stages),
        source_path=path,
    )
    _check_values(path, config)
    return config


def _check_values(path: Path, c: TrainConfig) -> None:
    if not 0 <= c.seed < 2**63:
        raise ConfigError(f"{path}: 'run.seed' must be in 0..2**63-1")
    if c.frame_size % 8 or not 32 <= c.frame_size <= 1024:
        raise ConfigError(f"{path}: 'data.frame_size' must be a multiple of 8 in 32..1024, got {c.frame_size}")
    if c.crop % 8 or not 16 <= c.crop <= c.frame_size:
        raise ConfigError(f"{path}: 'data.crop' must be a multiple of 8 in 16..frame_size, got {c.crop}")
    if not 1 <= c.warmup < c.clip_length <= 24:
        raise ConfigError(f"{path}: need 1 <= data.warmup < data.clip_length <= 24, got {c.warmup} and {c.clip_length}")
    if not c.t_index_list or list(c.t_index_list) != sorted(set(c.t_index_list)):
        raise ConfigError(f"{path}: 'schedule.t_index_list' must be strictly increasing, got {list(c.t_index_list)}")
    if c.t_index_list[0] - c.t_jitter < 0 or c.t_index_list[-1] + c.t_jitter >= c.num_inference_steps:
        raise ConfigError(f"{path}: 'schedule.t_index_list' +- t_jitter must stay inside 0..num_inference_steps-1")
    if not 0.0 <= c.sensor_noise <= 64.0:
        raise ConfigError(f"{path}: 'data.sensor_noise' must be in 0..64 (8-bit levels), got {c.sensor_noise}")
    if c.checkpoint_every < 1:
        raise ConfigError(f"{path}: 'checkpoint.every' must be >= 1")


def load_train_config(path: Path) -> TrainConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such training config") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read training config: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_train_config(data, path)
