"""Motion modules (and Live2Diff's depth module) from the original AnimateDiff / Live2Diff key names.

The original UNet3D names a motion module ``<block>.motion_modules.<i>.temporal_transformer.*`` with
``attention_blocks.<n>`` / ``norms.<n>`` / ``ff_norm`` inside each transformer block, and one sinusoidal
``pos_encoder.pe`` buffer per attention. diffusers' UNetMotionModel names the same weights
``<block>.motion_modules.<i>.*`` with ``attn1/attn2``, ``norm1/norm2/norm3`` and one ``pos_embed.pe`` per
transformer block. Live2Diff's checkpoint adds the depth encoder E_cond as ``flow_conv_in.*``
(conv_in, blocks.0..5, conv_out: the same names as our DepthEncoder).

Every key of the file is mapped, checked as a derived buffer, or reported: nothing is dropped silently.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import CheckpointError
from .checkpoint import StateDict, _short_list

if TYPE_CHECKING:  # annotations only: the heavy imports happen where the models are built
    from diffusers import UNet2DConditionModel, UNetMotionModel

log = logging.getLogger(__name__)

_MOTION_KEY = re.compile(
    r"^(?P<block>down_blocks\.\d+|up_blocks\.\d+|mid_block)\.motion_modules\.(?P<idx>\d+)\.temporal_transformer\.(?P<rest>.+)$"
)
_BLOCK_KEY = re.compile(r"^transformer_blocks\.(?P<t>\d+)\.(?P<rest>.+)$")
_ATTN_KEY = re.compile(r"^attention_blocks\.(?P<n>\d+)\.(?P<rest>.+)$")
# Buffers the streaming attention of the official code derives from to_q/k/v(pe); we recompute them.
_DERIVED_PE = ("q_pe", "k_pe", "v_pe")


@dataclass
class MotionWeights:
    """Motion-module weights in UNetMotionModel key names, plus E_cond when the file has one."""

    unet_state: StateDict  # keys as in UNetMotionModel.state_dict() (motion modules only)
    depth_state: StateDict | None  # keys as in DepthEncoder.state_dict(), None without flow_conv_in
    max_seq_length: int  # length of the sinusoidal PE table (24 for AnimateDiff v1 and Live2Diff)
    has_mid_block: bool
    source_file: Path


def _map_block_rest(rest: str) -> tuple[str | None, str | None]:
    """Name inside one temporal transformer block -> (diffusers name, pe role) ; (None, None) if unknown."""
    attn = _ATTN_KEY.match(rest)
    if attn:
        n, inner = int(attn["n"]), attn["rest"]
        if n > 1:
            return None, None
        if inner == "pos_encoder.pe":
            return None, "pe"
        if inner in _DERIVED_PE:
            return None, "derived"
        if re.fullmatch(r"to_[qkv]\.weight|to_out\.0\.(weight|bias)", inner):
            return f"attn{n + 1}.{inner}", None
        return None, None
    norm = re.fullmatch(r"norms\.(\d)\.(weight|bias)", rest)
    if norm and int(norm[1]) <= 1:
        return f"norm{int(norm[1]) + 1}.{norm[2]}", None
    if re.fullmatch(r"ff_norm\.(weight|bias)", rest):
        return "norm3." + rest.split(".")[1], None
    if re.fullmatch(r"ff\.net\.(0\.proj|2)\.(weight|bias)", rest):
        return rest, None
    return None, None


def map_original_motion_checkpoint(state: StateDict, file: Path) -> MotionWeights:
    """Map an original AnimateDiff motion-module file or a live2diff.ckpt onto diffusers/our names."""
    unet_state: StateDict = {}
    depth_state: StateDict = {}
    pe_tables: dict[str, list[torch.Tensor]] = {}
    unknown: list[str] = []
    skipped_grid = 0
    for raw_key, tensor in state.items():
        key = raw_key[len("module."):] if raw_key.startswith("module.") else raw_key
        if "grid" in key.split("."):
            # The official loader drops these non-learned sampling grids too; nothing in the model uses them.
            skipped_grid += 1
            continue
        if key.startswith("flow_conv_in."):
            depth_state[key[len("flow_conv_in."):]] = tensor
            continue
        m = _MOTION_KEY.match(key)
        if not m:
            unknown.append(raw_key)
            continue
        prefix = f"{m['block']}.motion_modules.{m['idx']}"
        rest = m["rest"]
        if re.fullmatch(r"(norm|proj_in|proj_out)\.(weight|bias)", rest):
            unet_state[f"{prefix}.{rest}"] = tensor
            continue
        b = _BLOCK_KEY.match(rest)
        mapped, role = _map_block_rest(b["rest"]) if b else (None, None)
        if mapped is not None:
            unet_state[f"{prefix}.transformer_blocks.{b['t']}.{mapped}"] = tensor
        elif role == "pe":
            pe_tables.setdefault(f"{prefix}.transformer_blocks.{b['t']}.pos_embed.pe", []).append(tensor)
        elif role != "derived":
            unknown.append(raw_key)
    if unknown:
        raise CheckpointError(
            f"{file}: not an AnimateDiff/Live2Diff motion-module checkpoint: "
            f"{len(unknown)} unexpected key(s): {_short_list(sorted(unknown))}"
        )
    if not unet_state:
        raise CheckpointError(f"{file}: holds no motion-module weights (no '*.motion_modules.*.temporal_transformer.*' keys)")
    if skipped_grid:
        log.debug("%s: ignored %d 'grid' buffer(s)", file, skipped_grid)

    lengths: set[int] = set()
    for name, tables in pe_tables.items():
        # diffusers keeps one PE table per transformer block; the original keeps one per attention.
        if any(t.shape != tables[0].shape or not torch.equal(t, tables[0]) for t in tables[1:]):
            raise CheckpointError(f"{file}: the positional-encoding tables of '{name}' differ between its attentions")
        unet_state[name] = tables[0]
        lengths.add(int(tables[0].shape[1]))
    if len(lengths) > 1:
        raise CheckpointError(f"{file}: motion modules disagree on the positional-encoding length: {sorted(lengths)}")
    max_seq_length = lengths.pop() if lengths else 24
    has_mid = any(k.startswith("mid_block.") for k in unet_state)
    return MotionWeights(
        unet_state=unet_state,
        depth_state=depth_state or None,
        max_seq_length=max_seq_length,
        has_mid_block=has_mid,
        source_file=file,
    )


def motion_unet_config(unet2d: "UNet2DConditionModel", num_heads: int, max_seq_length: int, has_mid_block: bool) -> dict:  # noqa: F821
    """UNetMotionModel arguments for ``unet2d``'s architecture with the given motion-module options."""
    from diffusers import UNetMotionModel

    # from_unet2d maps the 2D block types to their motion versions; the motion options are set here.
    config = dict(UNetMotionModel.from_unet2d(unet2d, None, load_weights=False).config)
    config.update(
        motion_num_attention_heads=num_heads,
        motion_max_seq_length=max_seq_length,
        use_motion_mid_block=has_mid_block,
        temporal_transformer_layers_per_block=1,
        temporal_transformer_layers_per_mid_block=1,
    )
    # Private entries (e.g. '_use_default_values') would make diffusers restore the defaults we just set.
    return {k: v for k, v in config.items() if not k.startswith("_")}


def build_motion_unet(unet2d: "UNet2DConditionModel", motion: MotionWeights, num_heads: int = 8) -> "UNetMotionModel":  # noqa: F821
    """A UNetMotionModel with ``unet2d``'s weights and ``motion``'s motion modules (all keys checked first).

    ``unet2d`` hands its tensors over: do not use it afterwards.

    The model is laid out on the meta device and then takes the real tensors (``assign=True``): at SD1.5
    size this skips ~1.7 G random numbers and a second full copy of the UNet in memory.
    """
    from diffusers import UNetMotionModel

    with torch.device("meta"):
        model = UNetMotionModel(**motion_unet_config(unet2d, num_heads, motion.max_seq_length, motion.has_mid_block))
    expected = model.state_dict()
    # The 2D parts of UNetMotionModel keep UNet2DConditionModel's names.
    full = {**unet2d.state_dict(), **motion.unet_state}
    expected_motion = {k for k in expected if ".motion_modules." in k}
    missing = sorted(set(expected) - set(full))
    unexpected = sorted(set(full) - set(expected))
    wrong = sorted(
        f"{k} {tuple(full[k].shape)} != {tuple(expected[k].shape)}"
        for k in set(expected) & set(full)
        if full[k].shape != expected[k].shape
    )
    problems = []
    if wrong:
        problems.append(f"{len(wrong)} tensor(s) of the wrong shape: {_short_list(wrong)}")
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_short_list(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_short_list(unexpected)}")
    if problems:
        raise CheckpointError(
            f"{motion.source_file}: motion modules do not fit this UNet (made for another base?): " + "; ".join(problems)
        )
    assert expected_motion <= set(motion.unet_state)
    # assign=True takes the tensors as they are (no copy of the 2D weights: ``unet2d`` must not be used
    # afterwards); a motion file saved in another precision is cast to the UNet's here.
    dtype = next(unet2d.parameters()).dtype
    full = {k: v.to(dtype) if v.is_floating_point() else v for k, v in full.items()}
    model.load_state_dict(full, strict=True, assign=True)
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:
        raise CheckpointError(f"{motion.source_file}: no weights for {_short_list(leftover)}")
    return model.eval()


def to_original_motion_checkpoint(unet_state: StateDict, depth_state: StateDict | None = None) -> StateDict:
    """The inverse of ``map_original_motion_checkpoint``: UNetMotionModel motion keys (and E_cond) in the
    key layout of the official live2diff.ckpt, which the official loader and ours both read.

    Non-motion keys of ``unet_state`` are ignored (the 2D UNet is saved in diffusers' layout elsewhere).
    """
    out: StateDict = {}
    motion = re.compile(r"^(?P<prefix>(?:down_blocks|up_blocks)\.\d+\.motion_modules\.\d+|mid_block\.motion_modules\.\d+)\.(?P<rest>.+)$")
    for key, tensor in unet_state.items():
        m = motion.match(key)
        if not m:
            continue
        base = f"{m['prefix']}.temporal_transformer"
        rest = m["rest"]
        block = re.fullmatch(r"transformer_blocks\.(\d+)\.(.+)", rest)
        if block is None:
            out[f"{base}.{rest}"] = tensor  # norm, proj_in, proj_out
            continue
        t, inner = block[1], block[2]
        prefix = f"{base}.transformer_blocks.{t}"
        if inner == "pos_embed.pe":
            for n in (0, 1):  # the original keeps one PE table per attention (separate tensors on disk)
                out[f"{prefix}.attention_blocks.{n}.pos_encoder.pe"] = tensor.clone()
        elif (attn := re.fullmatch(r"attn([12])\.(.+)", inner)) is not None:
            out[f"{prefix}.attention_blocks.{int(attn[1]) - 1}.{attn[2]}"] = tensor
        elif (norm := re.fullmatch(r"norm([12])\.(weight|bias)", inner)) is not None:
            out[f"{prefix}.norms.{int(norm[1]) - 1}.{norm[2]}"] = tensor
        elif (norm3 := re.fullmatch(r"norm3\.(weight|bias)", inner)) is not None:
            out[f"{prefix}.ff_norm.{norm3[1]}"] = tensor
        elif inner.startswith("ff.net."):
            out[f"{prefix}.{inner}"] = tensor
        else:
            raise CheckpointError(f"motion-module key {key!r} has no place in the Live2Diff checkpoint layout")
    for key, tensor in (depth_state or {}).items():
        out[f"flow_conv_in.{key}"] = tensor
    return out


def new_motion_unet(unet2d: "UNet2DConditionModel", num_heads: int, max_seq_length: int) -> "UNetMotionModel":  # noqa: F821
    """A UNetMotionModel holding ``unet2d``'s weights and freshly initialised motion modules (no mid-block
    module, as in Live2Diff), with each module's ``proj_out`` zeroed as original AnimateDiff does: the new
    model computes exactly what ``unet2d`` computes until its motion modules are trained."""
    from diffusers import UNetMotionModel

    model = UNetMotionModel(**motion_unet_config(unet2d, num_heads, max_seq_length, has_mid_block=False))
    missing, unexpected = model.load_state_dict(unet2d.state_dict(), strict=False)
    if unexpected or any(".motion_modules." not in k for k in missing):
        raise CheckpointError(f"the image UNet does not fit its motion version: {_short_list(sorted(unexpected) + sorted(missing))}")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".motion_modules." in name and ".proj_out." in name and ".transformer_blocks." not in name:
                param.zero_()
    return model


def motion_positions(path: Path) -> int | None:
    """Length of the positional tables in a motion checkpoint, read from a safetensors header alone
    (no tensor is loaded); None for pickle checkpoints, whose tables are known only once loaded."""
    from safetensors import SafetensorError, safe_open

    if Path(path).suffix.lower() != ".safetensors":
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                if key.endswith("pos_encoder.pe") or key.endswith("pos_embed.pe"):
                    return int(f.get_slice(key).get_shape()[1])
    except (SafetensorError, OSError, ValueError, RuntimeError):
        return None  # a broken file is reported by the loader, with its own message
    return None
