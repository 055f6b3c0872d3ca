"""LoRA files (kohya / diffusers / peft key styles) fused into the UNet and the CLIP text encoder.

Every LoRA pair becomes ``W += scale * alpha / rank * up @ down`` on the target Linear or Conv2d. All
pairs of all LoRAs are resolved and checked (target exists, shapes fit) before the first weight
changes, so a LoRA for another base raises and leaves both models as they were.

Key styles read:
- kohya / sd-scripts: ``lora_unet_<module_with_underscores>.lora_down.weight`` / ``.lora_up.weight`` /
  ``.alpha``; text encoder ``lora_te_...`` (also ``lora_te1_``). The underscored name is matched
  against the model's own module names with dots replaced by underscores.
- peft / diffusers: ``unet.<module>.lora_A.weight`` / ``.lora_B.weight`` (also ``.lora.down/up`` and
  ``.lora_linear_layer.down/up``; attention-processor style ``attn1.processor.to_q_lora.down``), with
  ``text_encoder.`` for CLIP; optional ``.alpha``. No alpha means alpha = rank.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from .checkpoint import StateDict, _short_list

log = logging.getLogger(__name__)

_KOHYA_PREFIXES = {"lora_unet_": "unet", "lora_te_": "text_encoder", "lora_te1_": "text_encoder"}
_PEFT_PREFIXES = {"unet.": "unet", "text_encoder.": "text_encoder"}
_DOWN_UP = (
    (".lora_down.weight", ".lora_up.weight"),
    (".lora_A.weight", ".lora_B.weight"),
    (".lora.down.weight", ".lora.up.weight"),
    (".lora_linear_layer.down.weight", ".lora_linear_layer.up.weight"),
    ("_lora.down.weight", "_lora.up.weight"),
)


@dataclass
class LoraPair:
    target: str  # "unet" or "text_encoder"
    module: str  # kohya: underscored name; others: dotted module name
    down: torch.Tensor
    up: torch.Tensor
    alpha: float | None
    kohya: bool


@dataclass
class LoraFile:
    path: Path
    pairs: list[LoraPair]


def _split_suffix(key: str) -> tuple[str, str] | None:
    for down, up in _DOWN_UP:
        if key.endswith(down):
            return key[: -len(down)], "down"
        if key.endswith(up):
            return key[: -len(up)], "up"
    if key.endswith(".alpha"):
        return key[: -len(".alpha")], "alpha"
    return None


def _processor_style(name: str) -> str:
    # attn1.processor.to_q -> attn1.to_q ; to_out -> to_out.0 (the Linear inside the output ModuleList)
    name = name.replace(".processor.", ".")
    return re.sub(r"\.to_out$", ".to_out.0", name)


def parse_lora(state: StateDict, path: Path) -> LoraFile:
    groups: dict[tuple[str, str, bool], dict[str, torch.Tensor]] = {}
    unknown: list[str] = []
    for key, tensor in state.items():
        split = _split_suffix(key)
        if split is None:
            unknown.append(key)
            continue
        name, part = split
        kohya_prefix = next((p for p in _KOHYA_PREFIXES if name.startswith(p)), None)
        if kohya_prefix:
            group = (_KOHYA_PREFIXES[kohya_prefix], name[len(kohya_prefix):], True)
        else:
            peft_prefix = next((p for p in _PEFT_PREFIXES if name.startswith(p)), None)
            target = _PEFT_PREFIXES[peft_prefix] if peft_prefix else "unet"  # bare peft files are UNet-only
            module = name[len(peft_prefix):] if peft_prefix else name
            group = (target, _processor_style(module), False)
        groups.setdefault(group, {})[part] = tensor
    if unknown:
        raise CheckpointError(
            f"{path}: not a LoRA l2d-obs can read (LyCORIS/LoHa/DoRA are not supported): "
            f"{len(unknown)} unknown key(s): {_short_list(sorted(unknown))}"
        )
    pairs: list[LoraPair] = []
    incomplete: list[str] = []
    for (target, module, kohya), parts in groups.items():
        if "down" not in parts or "up" not in parts:
            incomplete.append(f"{target}:{module}")
            continue
        alpha = float(parts["alpha"].item()) if "alpha" in parts else None
        pairs.append(LoraPair(target, module, parts["down"], parts["up"], alpha, kohya))
    if incomplete:
        raise CheckpointError(f"{path}: LoRA has {len(incomplete)} layer(s) without both down and up weights: {_short_list(sorted(incomplete))}")
    if not pairs:
        raise CheckpointError(f"{path}: holds no LoRA weights")
    return LoraFile(path=path, pairs=pairs)


def _target_modules(model: nn.Module, kohya: bool) -> dict[str, nn.Module]:
    modules = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
    if modules and not any(n.startswith("text_model.") for n in modules) and hasattr(model, "embeddings"):
        # LoRA files name CLIP layers 'text_model.*'; transformers 5's CLIPTextModel has no such wrapper.
        modules.update({f"text_model.{n}": m for n, m in list(modules.items())})
    if kohya:
        return {n.replace(".", "_"): m for n, m in modules.items()}
    return modules


def _misfit(pair: LoraPair, module: nn.Module) -> str | None:
    """Why ``pair`` cannot update ``module``'s weight, or None when it fits."""
    weight = module.weight
    rank = pair.down.shape[0]
    if pair.up.ndim < 2 or pair.up.shape[1] != rank:
        return f"rank of down {tuple(pair.down.shape)} and up {tuple(pair.up.shape)} differ"
    if pair.up.shape[0] != weight.shape[0]:
        return f"output size {pair.up.shape[0]} != {weight.shape[0]}"
    if pair.up[0].numel() != rank:  # a conv 'up' must be 1x1
        return f"up weight {tuple(pair.up.shape)} is not 1x1"
    if pair.down[0].numel() != weight[0].numel():
        return f"input size {tuple(pair.down.shape[1:])} != {tuple(weight.shape[1:])}"
    return None


def _delta(pair: LoraPair, weight: torch.Tensor) -> torch.Tensor:
    """The weight update of one pair at scale 1 (computed in fp32)."""
    rank = pair.down.shape[0]
    down = pair.down.float().reshape(rank, -1)
    up = pair.up.float().reshape(pair.up.shape[0], rank)
    alpha_scale = (pair.alpha / rank) if pair.alpha is not None else 1.0
    return (up @ down).reshape(weight.shape) * alpha_scale


def fuse_loras(models: dict[str, nn.Module], loras: list[tuple[LoraFile, float]]) -> None:
    """Fuse each (LoraFile, scale) into ``models`` ("unet", "text_encoder"); all-or-nothing: every pair of
    every file is matched and shape-checked before the first weight changes."""
    updates: list[tuple[nn.Module, LoraPair, float]] = []
    lookup = {
        (target, kohya): _target_modules(model, kohya) for target, model in models.items() for kohya in (True, False)
    }
    for lora, scale in loras:
        missing: list[str] = []
        misfit: list[str] = []
        for pair in lora.pairs:
            module = lookup.get((pair.target, pair.kohya), {}).get(pair.module)
            if module is None:
                missing.append(f"{pair.target}:{pair.module}")
                continue
            reason = _misfit(pair, module)
            if reason:
                misfit.append(f"{pair.target}:{pair.module} ({reason})")
                continue
            updates.append((module, pair, scale))
        if missing or misfit:
            problems = []
            if misfit:
                problems.append(f"{len(misfit)} layer(s) of the wrong shape: {_short_list(sorted(misfit), 4)}")
            if missing:
                problems.append(f"{len(missing)} layer(s) not in the model: {_short_list(sorted(missing), 4)}")
            raise CheckpointError(
                f"{lora.path}: LoRA does not fit this SD1.5 model (made for another base?): " + "; ".join(problems)
            )
    # Everything fits: apply one update at a time (peak memory: one layer's delta, not all of them).
    with torch.no_grad():
        for module, pair, scale in updates:
            delta = _delta(pair, module.weight) * scale
            module.weight.add_(delta.to(dtype=module.weight.dtype, device=module.weight.device))
    log.info("fused %d LoRA file(s), %d layer update(s)", len(loras), len(updates))
