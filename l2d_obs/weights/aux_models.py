"""TAESD and the depth estimators (MiDaS DPT-hybrid, Depth-Anything small) from local folders."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.depth import TransformersDepthEstimator
from ..errors import CheckpointError, MissingWeightsError
from .base import _read_json, _weights_file
from .checkpoint import _short_list, load_checked, read_state_dict

if TYPE_CHECKING:  # annotations only: the heavy imports happen where the models are built
    from diffusers import AutoencoderTiny

log = logging.getLogger(__name__)

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def load_taesd(folder: Path) -> "AutoencoderTiny":  # noqa: F821
    """madebyollin/taesd in diffusers layout (config.json + diffusion_pytorch_model.safetensors)."""
    from diffusers import AutoencoderTiny

    model = AutoencoderTiny.from_config(_read_json(folder / "config.json"))
    file = _weights_file(folder, ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"))
    load_checked(model, read_state_dict(file), file, "TAESD")
    return model.eval()


def _preprocessing(folder: Path, model_type: str, config: dict) -> tuple[tuple[int, int], tuple, tuple]:
    """(input size, mean, std): from preprocessor_config.json when present, else the model family's."""
    if model_type == "dpt":
        size = (config.get("image_size", 384),) * 2  # DPT-hybrid needs exactly its image_size
        mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    else:
        size, mean, std = (518, 518), _IMAGENET_MEAN, _IMAGENET_STD
    pre = folder / "preprocessor_config.json"
    if pre.is_file():
        try:
            data = json.loads(pre.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{pre}: unreadable: {exc}") from None
        mean = tuple(data.get("image_mean", mean))
        std = tuple(data.get("image_std", std))
        if model_type != "dpt" and isinstance(data.get("size"), dict) and "height" in data["size"]:
            size = (data["size"]["height"], data["size"]["width"])
    return size, mean, std


def load_depth_estimator(folder: Path) -> TransformersDepthEstimator:
    """A transformers depth model folder (DPT / DPT-hybrid or Depth-Anything) behind our DepthEstimator."""
    from transformers import AutoConfig, DepthAnythingForDepthEstimation, DPTForDepthEstimation

    config_file = folder / "config.json"
    if not config_file.is_file():
        raise MissingWeightsError(f"{config_file}: depth model config missing")
    raw = _read_json(config_file)
    classes = {"dpt": DPTForDepthEstimation, "depth_anything": DepthAnythingForDepthEstimation}
    model_type = raw.get("model_type")
    if model_type not in classes:
        raise CheckpointError(f"{config_file}: model_type {model_type!r} is not a supported depth model (dpt, depth_anything)")
    config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    try:
        # transformers knows this family's historical key names; we only insist nothing is left random.
        from .quiet import no_loading_bars

        with no_loading_bars():
            model, info = classes[model_type].from_pretrained(str(folder), config=config, local_files_only=True,
                                                              output_loading_info=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{folder}: depth model cannot be loaded: {exc}") from None
    problems = []
    if info.get("missing_keys"):
        problems.append(f"missing key(s): {_short_list(sorted(info['missing_keys']))}")
    if info.get("mismatched_keys"):
        problems.append(f"wrong shape(s): {_short_list(sorted(str(k) for k in info['mismatched_keys']))}")
    if problems:
        raise CheckpointError(f"{folder}: depth model weights do not match its config: " + "; ".join(problems))
    if info.get("unexpected_keys"):
        log.warning("%s: ignored %d unused key(s) of the depth model", folder, len(info["unexpected_keys"]))
    size, mean, std = _preprocessing(folder, model_type, raw)
    return TransformersDepthEstimator(model, input_size=size, mean=mean, std=std)
