"""Writing a trained model in the layouts the project's loaders read, with a profile that points at it,
and reading one back to train on top of it (``run.init``).

    model/base/          diffusers SD layout: unet/ (the image UNet), text_encoder/, tokenizer/, scheduler/
    model/live2diff.safetensors   motion modules + E_cond (flow_conv_in.*) in the official Live2Diff keys
    model/vae/           AutoencoderTiny (TAESD layout)
    model/depth/         transformers DPT folder
    model/<name>-lora.safetensors  (a LoRA run) LoRA pairs in peft keys; the rest comes from run.init

The folder is written next to the old one and swapped in at the end: never half-written.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import save_file

from ..errors import ConfigError
from ..weights.motion import to_original_motion_checkpoint

if TYPE_CHECKING:
    from .models import TrainingModels
    from .trainer import Trainer

MODEL_DIR = "model"


def _save(state: dict[str, torch.Tensor], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().to("cpu").contiguous() for k, v in state.items()}, str(path))


def _json(path: Path, data: dict) -> None:
    # diffusers' private bookkeeping (e.g. '_use_default_values') would make from_config restore
    # defaults over the values written here (it silently dropped the calibrated scaling_factor).
    data = {k: v for k, v in data.items() if not k.startswith("_") or k == "_class_name"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_tokenizer(tokenizer, folder: Path) -> None:
    """CLIP's slow-tokenizer files (vocab.json + merges.txt), which ``weights.base.load_tokenizer`` reads;
    transformers 5 saves only tokenizer.json."""
    tokenizer.save_pretrained(str(folder))
    vocab = tokenizer.get_vocab()
    (folder / "vocab.json").write_text(json.dumps(dict(sorted(vocab.items(), key=lambda kv: kv[1])), ensure_ascii=False))
    merges = getattr(tokenizer, "bpe_ranks", None) or {}
    lines = ["#version: 0.2"] + [" ".join(pair) for pair, _ in sorted(merges.items(), key=lambda kv: kv[1])]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n")
    if not (folder / "special_tokens_map.json").is_file():
        _json(folder / "special_tokens_map.json", {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
                                                    "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"})  # fmt: skip


def write_base(models: "TrainingModels", folder: Path) -> None:
    """The image model as a diffusers SD folder (what ``weights.base.load_diffusers_folder`` reads)."""
    import diffusers

    from ..weights.base import SD15_CONFIG_DIR

    state = models.base_state()
    unet2d = {k: v for k, v in state.items() if ".motion_modules." not in k}
    _json(folder / "unet" / "config.json", {**models.unet2d_config, "_class_name": "UNet2DConditionModel"})
    _save(unet2d, folder / "unet" / "diffusion_pytorch_model.safetensors")
    (folder / "text_encoder").mkdir(parents=True, exist_ok=True)
    models.text_encoder.config.to_json_file(str(folder / "text_encoder" / "config.json"))
    _save(models.text_encoder.state_dict(), folder / "text_encoder" / "model.safetensors")
    write_tokenizer(models.tokenizer, folder / "tokenizer")
    shutil.copytree(SD15_CONFIG_DIR / "scheduler", folder / "scheduler")
    _json(folder / "model_index.json", {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": diffusers.__version__,
        "unet": ["diffusers", "UNet2DConditionModel"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "scheduler": ["diffusers", "LCMScheduler"],
    })  # fmt: skip


def write_model(models: "TrainingModels", folder: Path) -> None:
    write_base(models, folder / "base")
    motion = to_original_motion_checkpoint(models.base_state(), models.depth_encoder.state_dict())
    _save(motion, folder / "live2diff.safetensors")
    vae_config = {k: v for k, v in dict(models.vae.config).items() if k != "block_out_channels"}  # derived, not an argument
    _json(folder / "vae" / "config.json", {**vae_config, "_class_name": "AutoencoderTiny"})
    _save(models.vae.state_dict(), folder / "vae" / "diffusion_pytorch_model.safetensors")
    depth_model = models.depth_estimator.model
    depth_model.save_pretrained(str(folder / "depth"), safe_serialization=True)
    est = models.depth_estimator
    _json(folder / "depth" / "preprocessor_config.json", {
        "image_mean": [float(x) for x in est._mean.flatten()], "image_std": [float(x) for x in est._std.flatten()],
        "size": {"height": est.input_size[0], "width": est.input_size[1]},
    })  # fmt: skip


def _relative(target: Path, start: Path) -> str:
    try:
        return os.path.relpath(target, start)
    except ValueError:  # another drive (Windows)
        return str(target)


def profile_text(trainer: "Trainer", files: dict[str, str], loras: list[str]) -> str:
    cfg = trainer.config
    models = trainer.models
    assert models is not None
    lines = [
        f"# Written by 'l2d-obs train {cfg.source_path or ''}' (config fingerprint {cfg.fingerprint()}).",
        f"display_name = {json.dumps(cfg.display_name or cfg.name)}",
        f"prompt = {json.dumps(cfg.prompt)}",
        f"t_index_list = {list(cfg.t_index_list)}",
        f"num_inference_steps = {cfg.num_inference_steps}",
        "seed = 42",
        'noise = "fixed"',
        f"width = {cfg.frame_size}",
        f"height = {cfg.frame_size}",
        f"window = {cfg.clip_length}",
        f"warmup = {cfg.warmup}",
        "",
        "[model]",
        'kind = "sd15"',
        f"base = {json.dumps(files['base'])}",
        f"motion = {json.dumps(files['motion'])}",
        'lcm_lora = "none"  # trained for the few-step LCM schedule directly',
        f"vae = {json.dumps(files['vae'])}",
        "clip_skip = 1",
        f"motion_heads = {models.motion_heads}",
    ]
    for i, lora in enumerate(loras):
        lines += ["", "[[model.loras]]", f"source = {json.dumps(lora)}", "scale = 1.0", f'name = "{cfg.name}-{i}"']
    lines += ["", "[depth]", "enabled = true", 'estimator = "dpt"', f"source = {json.dumps(files['depth'])}", ""]
    return "\n".join(lines)


def export_run(trainer: "Trainer") -> Path:
    """Write model/ and <name>.toml into the run's output folder; returns the profile's path."""
    models = trainer.models
    assert models is not None
    out = trainer.output
    partial = out / f"{MODEL_DIR}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    loras: list[str] = []
    if models.has_lora:
        lora_file = partial / f"{trainer.config.name}-lora.safetensors"
        _save(models.lora_state(), lora_file)
        init = models.init_files
        files = {k: _relative(Path(v), out) for k, v in init.items() if k != "loras"}
        loras = [_relative(Path(p), out) for p in init.get("loras", [])]
        loras.append(f"{MODEL_DIR}/{lora_file.name}")
    else:
        write_model(models, partial)
        files = {"base": f"{MODEL_DIR}/base", "motion": f"{MODEL_DIR}/live2diff.safetensors", "vae": f"{MODEL_DIR}/vae",
                 "depth": f"{MODEL_DIR}/depth"}  # fmt: skip
    final = out / MODEL_DIR
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)
    profile_path = out / f"{trainer.config.name}.toml"
    tmp = profile_path.with_suffix(".tmp")
    tmp.write_text(profile_text(trainer, files, loras))
    os.replace(tmp, profile_path)
    return profile_path


def find_run_profile(init: str, relative_to: Path | None) -> Path:
    """``run.init``: a run's output folder (holding one profile), a profile file, or a profile name."""
    from ..profiles import available_profiles

    candidate = Path(init).expanduser()
    if not candidate.is_absolute() and relative_to is not None and (relative_to.parent / candidate).exists():
        candidate = relative_to.parent / candidate  # paths in a config are relative to the config file
    if candidate.is_dir():
        profiles = sorted(candidate.glob("*.toml"))
        if len(profiles) != 1:
            raise ConfigError(f"run.init: {candidate} holds {len(profiles)} profiles; name the .toml file itself")
        return profiles[0]
    if candidate.suffix == ".toml":
        if not candidate.is_file():
            raise ConfigError(f"run.init: {candidate}: no such profile file")
        return candidate
    known = available_profiles()
    if init in known:
        return known[init]
    raise ConfigError(f"run.init: {init!r} is neither a training output folder, a profile file nor a profile name")


def load_run_models(init: str, relative_to: Path | None) -> "TrainingModels":
    """The models of an earlier run (or any sd15-kind profile), through the project's own loaders."""
    from ..profiles import load_profile_file
    from ..weights.assemble import build_sd15_components, resolve_all
    from .models import TrainingModels

    profile = load_profile_file(find_run_profile(init, relative_to))
    if not profile.depth.enabled:
        raise ConfigError(f"run.init: profile '{profile.name}' has depth off; training on top of it needs its depth parts")
    components = build_sd15_components(profile)
    paths = resolve_all(profile)
    unet_config = json.loads((paths["base"] / "unet" / "config.json").read_text())
    models = TrainingModels.from_components(components, profile.model.motion_heads, unet_config)
    models.init_files = {"base": str(paths["base"]), "motion": str(paths["motion"]), "vae": str(paths["vae"]),
                         "depth": str(paths["depth"]),
                         "loras": [str(paths[f"lora:{s.name or i}"]) for i, s in enumerate(profile.model.loras)]}  # fmt: skip
    return models
