"""Profile -> Live2DiffComponents from real weight files (``model.kind = "sd15"``).

Order: find every file first (a missing one fails before any heavy work, naming the download
command), read and check each checkpoint, fuse LoRAs into the 2D UNet and text encoder (all-or-nothing),
then inflate to a UNetMotionModel with the motion modules. Nothing here downloads.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..engine.components import Live2DiffComponents
from ..engine.depth import DEFAULT_DEPTH_ENCODER_CHANNELS, DepthEncoder
from ..errors import CheckpointError, L2DError, ModelError
from ..profiles import Profile
from ..progress import ProgressFn, no_progress
from .aux_models import load_depth_estimator, load_taesd
from .base import SD15_CONFIG_DIR, load_base
from .checkpoint import load_checked, read_state_dict
from .lora import LoraFile, fuse_loras, parse_lora
from .motion import build_motion_unet, map_original_motion_checkpoint
from .plan import Requirement, profile_requirements
from .sources import parse_source
from .store import profile_ref, resolve

if TYPE_CHECKING:  # annotations only: the heavy imports happen where the models are built
    from diffusers import LCMScheduler

log = logging.getLogger(__name__)


def base_config_dir(profile: Profile) -> Path:
    if not profile.model.base_config:
        return SD15_CONFIG_DIR
    base_dir = profile.source_path.parent if profile.source_path else None
    return parse_source(profile.model.base_config, base_dir).path  # type: ignore[union-attr]


def resolve_all(profile: Profile) -> dict[str, Path]:
    ref = profile_ref(profile)
    return {req.role: resolve(req, ref) for req in profile_requirements(profile)}


def new_scheduler() -> "LCMScheduler":  # noqa: F821
    from diffusers import LCMScheduler

    return LCMScheduler.from_config(LCMScheduler.load_config(str(SD15_CONFIG_DIR / "scheduler")))


def build_sd15_components(
    profile: Profile, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
    progress: ProgressFn = no_progress,
) -> Live2DiffComponents:
    if profile.model.kind != "sd15":
        raise ModelError(f"profile '{profile.name}' has model.kind={profile.model.kind!r}; only 'sd15' loads weights")
    progress("finding weight files", 0.0)
    paths = resolve_all(profile)
    progress("loading the image model and text encoder", 0.05)
    base = load_base(paths["base"], base_config_dir(profile))

    progress("loading the motion modules", 0.45)
    motion_file = paths["motion"]
    motion = map_original_motion_checkpoint(read_state_dict(motion_file), motion_file)
    if profile.depth.enabled and motion.depth_state is None:
        raise CheckpointError(
            f"{motion_file}: has no depth module (flow_conv_in.*) but the profile has depth on; "
            "use live2diff.ckpt or set [depth] enabled = false"
        )

    if motion.unet2d_state and paths["base"].is_dir():
        # A whole-UNet motion file over a plain (diffusers-folder) base: its 2D weights replace the
        # base's, as the official loader's strict=False load does, before any LoRA is fused. Over a
        # single-file (DreamBooth) base the base's own 2D weights win, as they do there too.
        from .motion import load_unet2d_keys

        load_unet2d_keys(base.unet, motion)

    loras: list[tuple[LoraFile, float]] = []
    if "lcm_lora" in paths:  # absent for a base trained for few-step sampling (lcm_lora = "none")
        loras.append((parse_lora(read_state_dict(paths["lcm_lora"]), paths["lcm_lora"]), profile.model.lcm_lora_scale))
    for i, spec in enumerate(profile.model.loras):
        file = paths[f"lora:{spec.name or i}"]
        loras.append((parse_lora(read_state_dict(file), file), spec.scale))
    if loras:
        progress(f"fusing {len(loras)} LoRA(s)", 0.55)
        fuse_loras({"unet": base.unet, "text_encoder": base.text_encoder}, loras)

    progress("building the motion UNet", 0.65)
    unet = build_motion_unet(base.unet, motion, profile.model.motion_heads)
    progress("loading the VAE", 0.75)
    vae = load_taesd(paths["vae"])

    depth_encoder = depth_estimator = None
    if profile.depth.enabled:
        progress("loading the depth estimator", 0.8)
        ladder = DepthEncoder.channels_of(motion.depth_state) or DEFAULT_DEPTH_ENCODER_CHANNELS
        depth_encoder = DepthEncoder(in_channels=vae.config.latent_channels, out_channels=unet.config.block_out_channels[0], channels=ladder)
        load_checked(depth_encoder, motion.depth_state, motion_file, "Live2Diff depth encoder (flow_conv_in)")
        depth_estimator = load_depth_estimator(paths["depth"]).to(device, dtype)
        depth_encoder = depth_encoder.to(device=device, dtype=dtype).eval()

    log.info("loaded profile '%s' weights: %s", profile.name, ", ".join(f"{k}={v}" for k, v in paths.items()))
    progress(f"moving the model to {torch.device(device).type}", 0.9)
    return Live2DiffComponents(
        unet=unet.to(device=device, dtype=dtype),
        vae=vae.to(device=device, dtype=dtype),
        text_encoder=base.text_encoder.to(device=device, dtype=dtype),
        tokenizer=base.tokenizer,
        scheduler=new_scheduler(),
        depth_encoder=depth_encoder,
        depth_estimator=depth_estimator,
        clip_skip=profile.model.clip_skip,
    )


def check_window_fits(profile: Profile) -> None:
    """The profile's window against its motion modules' positional table, before anything loads:
    a ProfileError naming file, field, value and range (silent when the length cannot be read cheaply)."""
    from ..errors import ProfileError
    from .motion import motion_positions

    if profile.model.kind != "sd15":
        return
    try:
        motion_file = resolve_all(profile)["motion"]
    except L2DError:
        return  # missing files are reported by check_profile_files
    positions = motion_positions(motion_file)
    if positions is not None and profile.window > positions:
        where = profile.source_path or profile.name
        raise ProfileError(f"{where}: field 'window': {profile.window} is longer than the {positions} positions the "
                           f"motion modules in {motion_file.name} know; use 2..{positions}")


def check_profile_files(profile: Profile) -> list[str]:
    """One line per problem with the files a profile needs (for ``doctor``); empty when all are there."""
    problems: list[str] = []
    try:
        requirements: list[Requirement] = profile_requirements(profile)
    except L2DError as exc:
        return [str(exc)]
    ref = profile_ref(profile)
    for req in requirements:
        try:
            resolve(req, ref)
        except L2DError as exc:
            problems.append(str(exc))
    if profile.model.kind == "sd15":
        config = base_config_dir(profile)
        for name in ("unet/config.json", "text_encoder/config.json", "tokenizer/vocab.json", "tokenizer/merges.txt"):
            if not (config / name).is_file():
                problems.append(f"model.base_config: {config / name} is missing (needed to load single-file bases)")
    return problems
