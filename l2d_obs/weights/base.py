"""The SD1.5 base: a diffusers folder or a single-file (LDM/DreamBooth) checkpoint -> UNet2D + CLIP.

Both paths build fresh models from a local config and load every tensor through ``load_checked``, so
nothing reaches the network and a wrong file raises before any weight is copied. Single files need a
diffusers-layout config folder (shipped in ``l2d_obs/data/sd15``) because the file holds no config.
The single file's VAE (``first_stage_model.*``) is not used: l2d-obs decodes with TAESD.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import CheckpointError, MissingWeightsError
from ..paths import DATA_DIR
from .checkpoint import StateDict, _short_list, check_state_dict, read_state_dict

if TYPE_CHECKING:  # annotations only: the heavy imports happen where the models are built
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

log = logging.getLogger(__name__)

SD15_CONFIG_DIR = DATA_DIR / "sd15"  # diffusers layout: unet/, text_encoder/, tokenizer/, scheduler/

LDM_UNET_PREFIX = "model.diffusion_model."
LDM_CLIP_PREFIX = "cond_stage_model.transformer."
# Parts of an LDM checkpoint that l2d-obs knowingly does not use (the KL VAE: we decode with TAESD; EMA
# copies and the training scheduler's buffers: the scheduler comes from its config).
_LDM_UNUSED_PREFIXES = ("first_stage_model.", "model_ema.")
_LDM_UNUSED_KEYS = {
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
    "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
    "logvar", "lvlb_weights",
}  # fmt: skip


@dataclass
class BaseModel:
    unet: "UNet2DConditionModel"  # noqa: F821
    text_encoder: "CLIPTextModel"  # noqa: F821
    tokenizer: "CLIPTokenizer"  # noqa: F821


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise MissingWeightsError(f"{path}: config file missing") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable config: {exc}") from None


def new_unet2d(config_dir: Path) -> "UNet2DConditionModel":  # noqa: F821
    """An empty UNet (meta tensors): ``fill_unet2d`` gives it its weights without a random init first."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        return UNet2DConditionModel.from_config(_read_json(config_dir / "config.json"))


def fill_unet2d(unet: "UNet2DConditionModel", state: StateDict) -> None:  # noqa: F821
    """Take over an already checked state dict (fp32 master weights; the engine picks the run dtype)."""
    unet.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True, assign=True)


def new_text_encoder(config_dir: Path) -> "CLIPTextModel":  # noqa: F821
    from transformers import CLIPTextConfig, CLIPTextModel

    _read_json(config_dir / "config.json")  # one clear error when it is missing
    return CLIPTextModel(CLIPTextConfig.from_json_file(str(config_dir / "config.json")))


def load_tokenizer(tokenizer_dir: Path) -> "CLIPTokenizer":  # noqa: F821
    from transformers import CLIPTokenizer

    for name in ("vocab.json", "merges.txt"):
        if not (tokenizer_dir / name).is_file():
            raise MissingWeightsError(f"{tokenizer_dir / name}: CLIP tokenizer file missing")
    # SD1.5 prompts are 77 tokens; a folder without tokenizer_config.json would default to a huge max length.
    return CLIPTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True, model_max_length=77)


def normalise_clip_keys(state: StateDict, model: "CLIPTextModel") -> StateDict:  # noqa: F821
    """CLIP weights in the key style of ``model``.

    Files name them ``text_model.*`` (older ones without the prefix); transformers 5's CLIPTextModel has
    no ``text_model`` wrapper. ``position_ids`` is a constant buffer, not a weight.
    """
    wants_prefix = any(k.startswith("text_model.") for k in model.state_dict())
    out: StateDict = {}
    for key, tensor in state.items():
        if key.endswith("embeddings.position_ids"):
            continue
        bare = key[len("text_model."):] if key.startswith("text_model.") else key
        out[f"text_model.{bare}" if wants_prefix else bare] = tensor
    return out


def _weights_file(folder: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise MissingWeightsError(f"{folder}: no weights file (looked for {', '.join(names)})")


def load_diffusers_folder(folder: Path) -> BaseModel:
    """A diffusers SD1.5 folder (unet/, text_encoder/, tokenizer/)."""
    unet = new_unet2d(folder / "unet")
    unet_file = _weights_file(folder / "unet", ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"))
    unet_state = read_state_dict(unet_file)
    text_encoder = new_text_encoder(folder / "text_encoder")
    te_file = _weights_file(folder / "text_encoder", ("model.safetensors", "pytorch_model.bin"))
    te_state = normalise_clip_keys(read_state_dict(te_file), text_encoder)
    check_state_dict(unet, unet_state, unet_file, "SD1.5 UNet")
    check_state_dict(text_encoder, te_state, te_file, "CLIP text encoder")
    fill_unet2d(unet, unet_state)
    text_encoder.load_state_dict(te_state, strict=True)
    tokenizer_dir = folder / "tokenizer" if (folder / "tokenizer" / "vocab.json").is_file() else SD15_CONFIG_DIR / "tokenizer"
    return BaseModel(unet=unet.eval(), text_encoder=text_encoder.eval(), tokenizer=load_tokenizer(tokenizer_dir))


def _diagnose_not_sd15(state: StateDict, file: Path) -> None:
    keys = state.keys()
    if any(k.startswith("conditioner.embedders.") for k in keys):
        raise CheckpointError(f"{file}: this is an SDXL checkpoint; l2d-obs needs a Stable Diffusion 1.x model")
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        raise CheckpointError(f"{file}: this is a Stable Diffusion 2.x checkpoint (OpenCLIP); l2d-obs needs SD 1.x")
    if not any(k.startswith(LDM_UNET_PREFIX) for k in keys):
        hint = " (it looks like a LoRA: list it under [[model.loras]])" if any("lora" in k for k in keys) else ""
        raise CheckpointError(f"{file}: not a Stable Diffusion checkpoint: no '{LDM_UNET_PREFIX}*' keys{hint}")
    if not any(k.startswith(LDM_CLIP_PREFIX) for k in keys):
        raise CheckpointError(f"{file}: the checkpoint has no CLIP text encoder ('{LDM_CLIP_PREFIX}*' keys)")


def convert_ldm_checkpoint(state: StateDict, file: Path, unet_config: dict) -> tuple[StateDict, StateDict]:
    """LDM single-file keys -> (UNet2DConditionModel state, CLIPTextModel state); every key accounted for."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    _diagnose_not_sd15(state, file)
    unet_src = {k: v for k, v in state.items() if k.startswith(LDM_UNET_PREFIX)}
    try:
        unet_state = convert_ldm_unet_checkpoint(unet_src, unet_config)
    except (KeyError, IndexError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{file}: UNet layout does not match the SD1.5 config: {exc!r}") from None
    # diffusers' converter skips names it does not know; tensors it did not carry over are reported.
    carried = {id(t) for t in unet_state.values()}
    leftover = sorted(k for k, v in unet_src.items() if id(v) not in carried)
    clip_state = {k[len(LDM_CLIP_PREFIX):]: v for k, v in state.items() if k.startswith(LDM_CLIP_PREFIX)}
    other = sorted(
        k
        for k in state
        if not k.startswith((LDM_UNET_PREFIX, LDM_CLIP_PREFIX, *_LDM_UNUSED_PREFIXES)) and k not in _LDM_UNUSED_KEYS
    )
    if leftover or other:
        raise CheckpointError(
            f"{file}: {len(leftover) + len(other)} unexpected key(s) for an SD1.5 checkpoint: "
            f"{_short_list(leftover + other)}"
        )
    return unet_state, clip_state


def load_single_file(file: Path, config_dir: Path = SD15_CONFIG_DIR) -> BaseModel:
    """A single-file SD1.x checkpoint (.safetensors preferred, .ckpt read with weights_only=True)."""
    state = read_state_dict(file)
    unet_config = _read_json(config_dir / "unet" / "config.json")
    unet_state, clip_state = convert_ldm_checkpoint(state, file, unet_config)
    unet = new_unet2d(config_dir / "unet")
    text_encoder = new_text_encoder(config_dir / "text_encoder")
    clip_state = normalise_clip_keys(clip_state, text_encoder)
    check_state_dict(unet, unet_state, file, "SD1.5 UNet")
    check_state_dict(text_encoder, clip_state, file, "CLIP text encoder")
    fill_unet2d(unet, unet_state)
    text_encoder.load_state_dict(clip_state, strict=True)
    return BaseModel(unet=unet.eval(), text_encoder=text_encoder.eval(), tokenizer=load_tokenizer(config_dir / "tokenizer"))


def load_base(path: Path, config_dir: Path = SD15_CONFIG_DIR) -> BaseModel:
    path = Path(path)
    if path.is_dir():
        return load_diffusers_folder(path)
    if path.is_file():
        return load_single_file(path, config_dir)
    raise MissingWeightsError(f"{path}: base model not found")

