"""Motion modules (and Live2Diff's depth module) from the original AnimateDiff / Live2Diff key names.

The original UNet3D names a motion module ``<block>.motion_modules.<i>.temporal_transformer.*`` with
``attention_blocks.<n>`` / ``norms.<n>`` / ``ff_norm`` inside each transformer block, and one sinusoidal
``pos_encoder.pe`` buffer per attention. diffusers' UNetMotionModel names the same weights
``<block>.motion_modules.<i>.*`` with ``attn1/attn2``, ``norm1/norm2/norm3`` and one ``pos_embed.pe`` per
transformer block. Live2Diff's checkpoint adds the depth encoder E_cond as ``flow_conv_in.*``
(conv_in, blocks.0..5, conv_out: the same names as our DepthEncoder).

Every key of the file is mapped, checked as a derived buffer, or reported: nothing is dropped silently.

Layouts the official loader (``AnimationDepthPipeline.build_pipeline``: ``unet.load_state_dict(state,
strict=False)`` into a UNet3D built from the SD1.5 folder, then the DreamBooth loaded over it) also reads:

- no ``pos_encoder.pe``: the official ``PositionalEncoding`` builds the table itself; we compute the same
  table (same formula, length ``default_max_seq_length``, 24 as in Live2Diff's config).
- the 2D UNet keys too (a whole UNet3D state dict; its 2D names are diffusers' UNet2DConditionModel names):
  kept in ``MotionWeights.unet2d_state`` and checked against the base. ``load_unet2d_keys`` puts them over
  the base (the official strict=False load, for a plain SD1.5 base); without it ``build_motion_unet`` keeps
  the base's 2D weights (what the official loader ends with when a DreamBooth base is loaded over them).
- ``q_pe/k_pe/v_pe`` (``to_q/k/v(pe)``, cached by the official streaming attention): checked against what
  the file's projections and tables give, then dropped (the engine computes its own).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import CheckpointError
from .checkpoint import StateDict, _short_list, mismatch_problems

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
# Top-level modules of a UNet2DConditionModel (the 2D part of a whole UNet3D state dict keeps these names).
_UNET2D_KEY = re.compile(
    r"^(conv_in|conv_out|conv_norm_out|time_embedding|class_embedding|add_embedding|down_blocks|up_blocks|mid_block)\."
)
DEFAULT_MAX_SEQ_LENGTH = 24  # temporal_position_encoding_max_len in Live2Diff's configs/base_config.yaml


@dataclass
class MotionWeights:
    """Motion-module weights in UNetMotionModel key names, plus E_cond when the file has one."""

    unet_state: StateDict  # keys as in UNetMotionModel.state_dict() (motion modules only)
    depth_state: StateDict | None  # keys as in DepthEncoder.state_dict(), None without flow_conv_in
    max_seq_length: int  # length of the sinusoidal PE table (24 for AnimateDiff v1 and Live2Diff)
    has_mid_block: bool
    source_file: Path
    # 2D UNet keys (UNet2DConditionModel names) of a whole-UNet file; empty for a motion-only file.
    unet2d_state: StateDict = field(default_factory=dict)
    unet2d_applied: bool = False  # set by load_unet2d_keys


def sinusoidal_table(d_model: int, max_len: int) -> torch.Tensor:
    """The official ``PositionalEncoding`` table ``[1, max_len, d_model]`` (live2diff/animatediff/models/
    positional_encoding.py), computed with the same operations so it is bit for bit the same."""
    position = torch.arange(max_len).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(1, max_len, d_model)
    pe[0, :, 0::2] = torch.sin(position * div_term)
    pe[0, :, 1::2] = torch.cos(position * div_term)
    return pe


def _derived_tolerance(dtype: torch.dtype) -> float:
    """Allowed max |stored - computed| / max(1, max |computed|) for a q_pe/k_pe/v_pe buffer: fp32 rounding
    for fp32 files; the stored precision for half files (the official code computes them after casting the
    UNet to fp16). A buffer of another model is off by O(1)."""
    return max(1e-4, 16 * torch.finfo(dtype).eps) if dtype.is_floating_point else 1e-4


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


def map_original_motion_checkpoint(
    state: StateDict, file: Path, default_max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH
) -> MotionWeights:
    """Map an original AnimateDiff motion-module file or a live2diff.ckpt onto diffusers/our names.

    ``default_max_seq_length`` is the PE length of a file without ``pos_encoder.pe`` tables (the official
    config's ``temporal_position_encoding_max_len``); a file with tables gives its own length.
    """
    unet_state: StateDict = {}
    unet2d_state: StateDict = {}
    depth_state: StateDict = {}
    # Per attention (diffusers block name, n): its PE table, projections and derived buffers as in the file.
    pe_of: dict[tuple[str, int], tuple[str, torch.Tensor]] = {}
    proj_of: dict[tuple[str, int, str], torch.Tensor] = {}
    derived: list[tuple[str, str, int, str, torch.Tensor]] = []  # (raw key, block, n, q|k|v, tensor)
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
            if ".motion_modules." not in key and _UNET2D_KEY.match(key):
                unet2d_state[key] = tensor  # checked against the base in build_motion_unet / load_unet2d_keys
            else:
                unknown.append(raw_key)
            continue
        prefix = f"{m['block']}.motion_modules.{m['idx']}"
        rest = m["rest"]
        if re.fullmatch(r"(norm|proj_in|proj_out)\.(weight|bias)", rest):
            unet_state[f"{prefix}.{rest}"] = tensor
            continue
        b = _BLOCK_KEY.match(rest)
        mapped, role = _map_block_rest(b["rest"]) if b else (None, None)
        if mapped is None and role is None:
            unknown.append(raw_key)
            continue
        block = f"{prefix}.transformer_blocks.{b['t']}"
        attn = _ATTN_KEY.match(b["rest"])
        if mapped is not None:
            unet_state[f"{block}.{mapped}"] = tensor
            if attn and re.fullmatch(r"to_[qkv]\.weight", attn["rest"]):
                proj_of[(block, int(attn["n"]), attn["rest"][3])] = tensor
        elif role == "pe":
            pe_of[(block, int(attn["n"]))] = (raw_key, tensor)
        else:  # derived
            derived.append((raw_key, block, int(attn["n"]), attn["rest"][0], tensor))
    if unknown:
        raise CheckpointError(
            f"{file}: not an AnimateDiff/Live2Diff motion-module checkpoint: "
            f"{len(unknown)} unexpected key(s): {_short_list(sorted(unknown))}"
        )
    if not unet_state:
        raise CheckpointError(f"{file}: holds no motion-module weights (no '*.motion_modules.*.temporal_transformer.*' keys)")
    if skipped_grid:
        log.debug("%s: ignored %d 'grid' buffer(s)", file, skipped_grid)

    file_lengths = {int(t.shape[1]) for _, t in pe_of.values() if t.dim() == 3}
    if len(file_lengths) > 1:
        raise CheckpointError(f"{file}: motion modules disagree on the positional-encoding length: {sorted(file_lengths)}")
    max_seq_length = next(iter(file_lengths)) if file_lengths else default_max_seq_length

    # An attention without its table gets the one the official PositionalEncoding builds in __init__
    # (the strict=False load leaves it as built); its width is the attention's query dim.
    computed = 0
    for (block, n, proj), weight in proj_of.items():
        if proj == "q" and (block, n) not in pe_of:
            pe_of[(block, n)] = ("", sinusoidal_table(int(weight.shape[1]), max_seq_length))
            computed += 1
    if computed:
        log.info(
            "%s: carries no positional tables for %d temporal attention(s); computed them as the official "
            "PositionalEncoding does (length %d)", file, computed, max_seq_length,
        )

    tables: dict[str, list[torch.Tensor]] = {}
    for (block, n), (_, table) in sorted(pe_of.items()):
        tables.setdefault(f"{block}.pos_embed.pe", []).append(table)
    for name, group in tables.items():
        # diffusers keeps one PE table per transformer block; the original keeps one per attention.
        if any(t.shape != group[0].shape or not torch.equal(t, group[0]) for t in group[1:]):
            raise CheckpointError(f"{file}: the positional-encoding tables of '{name}' differ between its attentions")
        unet_state[name] = group[0]

    _check_derived_pe(derived, pe_of, proj_of, file)
    if derived:
        log.debug("%s: checked and dropped %d q_pe/k_pe/v_pe buffer(s)", file, len(derived))

    has_mid = any(k.startswith("mid_block.") for k in unet_state)
    return MotionWeights(
        unet_state=unet_state,
        depth_state=depth_state or None,
        max_seq_length=max_seq_length,
        has_mid_block=has_mid,
        source_file=file,
        unet2d_state=unet2d_state,
    )


def _check_derived_pe(derived, pe_of, proj_of, file: Path) -> None:
    """Each q_pe/k_pe/v_pe must be ``F.linear(pe[:, :L], to_x.weight)`` of its own attention (the official
    ``prepare_pe_buffer``); the first one that is not is refused in one line."""
    for raw_key, block, n, proj, stored in sorted(derived, key=lambda d: d[0]):
        weight = proj_of.get((block, n, proj))
        table = pe_of.get((block, n), (None, None))[1]
        reason = None
        if weight is None or table is None:
            reason = f"the file has no to_{proj}.weight for its attention"
        elif (
            stored.dim() != 3 or stored.shape[0] != 1 or stored.shape[2] != weight.shape[0]
            or stored.shape[1] > table.shape[1] or weight.shape[1] != table.shape[2]
        ):
            reason = f"shape {tuple(stored.shape)} does not fit to_{proj}.weight {tuple(weight.shape)} and the positional table {tuple(table.shape)}"
        else:
            expected = torch.nn.functional.linear(table[:, : stored.shape[1]].double(), weight.double())
            err = float((stored.double() - expected).abs().max()) if stored.numel() else 0.0
            scale = max(1.0, float(expected.abs().max()) if expected.numel() else 0.0)
            if not err <= _derived_tolerance(stored.dtype) * scale:
                reason = f"differs from to_{proj}(pe) by up to {err:.3g}"
        if reason is not None:
            raise CheckpointError(
                f"{file}: '{raw_key}' does not match its attention ({reason}): a checkpoint from another model?"
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
    problems = mismatch_problems(wrong, missing, unexpected)
    if problems:
        raise CheckpointError(
            f"{motion.source_file}: motion modules do not fit this UNet (made for another base?): " + "; ".join(problems)
        )
    assert expected_motion <= set(motion.unet_state)
    if motion.unet2d_state:
        _check_unet2d_keys(unet2d, motion)
        if not motion.unet2d_applied:
            log.info(
                "%s: a whole-UNet file: its %d 2D UNet key(s) fit the base and are not used; the base's 2D "
                "weights are kept (the official loader ends the same way: the DreamBooth base is loaded over "
                "them; load_unet2d_keys puts them over a plain SD1.5 base)", motion.source_file, len(motion.unet2d_state),
            )
    # assign=True takes the tensors as they are (no copy of the 2D weights: ``unet2d`` must not be used
    # afterwards); a motion file saved in another precision is cast to the UNet's here.
    dtype = next(unet2d.parameters()).dtype
    full = {k: v.to(dtype) if v.is_floating_point() else v for k, v in full.items()}
    model.load_state_dict(full, strict=True, assign=True)
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:
        raise CheckpointError(f"{motion.source_file}: no weights for {_short_list(leftover)}")
    return model.eval()


def _check_unet2d_keys(unet2d: "UNet2DConditionModel", motion: MotionWeights) -> None:  # noqa: F821
    """The file's 2D keys must be keys of the base with the base's shapes (the official strict=False load
    refuses unexpected keys and wrong shapes too)."""
    base = unet2d.state_dict()
    unexpected = sorted(k for k in motion.unet2d_state if k not in base)
    wrong = sorted(
        f"{k} {tuple(v.shape)} != {tuple(base[k].shape)}" for k, v in motion.unet2d_state.items()
        if k in base and v.shape != base[k].shape
    )
    problems = mismatch_problems(wrong, unexpected=unexpected)
    if problems:
        raise CheckpointError(
            f"{motion.source_file}: its 2D UNet keys do not fit this base (made for another base?): " + "; ".join(problems)
        )


def load_unet2d_keys(unet2d: "UNet2DConditionModel", motion: MotionWeights) -> int:  # noqa: F821
    """Put a whole-UNet file's 2D keys over ``unet2d`` (checked first), as the official loader's
    ``unet.load_state_dict(state, strict=False)`` does over the SD1.5 UNet it was built from; keys the file
    lacks keep the base's values. Call it on a plain SD1.5 base before fusing LoRAs (the official code fuses
    them afterwards) and not on a DreamBooth base (the official code loads the DreamBooth over these keys).
    Returns how many tensors were replaced."""
    if not motion.unet2d_state:
        return 0
    _check_unet2d_keys(unet2d, motion)
    tensors = {**dict(unet2d.named_buffers()), **dict(unet2d.named_parameters())}
    # every target is found before the first copy: a bad file never leaves a half-replaced base
    targets = {key: tensors.get(key) for key in motion.unet2d_state}
    unusable = sorted(k for k, t in targets.items() if t is None or t.is_meta)
    if unusable:
        raise CheckpointError(f"{motion.source_file}: the base UNet has no weights to replace for {_short_list(unusable)}")
    with torch.no_grad():
        for key, tensor in motion.unet2d_state.items():
            targets[key].copy_(tensor.to(targets[key].dtype))
    motion.unet2d_applied = True
    log.info(
        "%s: a whole-UNet file: its %d 2D UNet key(s) replace the base's (the official strict=False load)",
        motion.source_file, len(motion.unet2d_state),
    )
    return len(motion.unet2d_state)


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
    (no tensor is loaded); the default length for a motion file without tables (the loader computes them);
    None for pickle checkpoints, whose tables are known only once loaded."""
    from safetensors import SafetensorError, safe_open

    if Path(path).suffix.lower() != ".safetensors":
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
            for key in keys:
                if key.endswith("pos_encoder.pe") or key.endswith("pos_embed.pe"):
                    return int(f.get_slice(key).get_shape()[1])
    except (SafetensorError, OSError, ValueError, RuntimeError):
        return None  # a broken file is reported by the loader, with its own message
    # no tables: the loader computes them with the default length, as the official code does
    return DEFAULT_MAX_SEQ_LENGTH if any(".temporal_transformer." in k for k in keys) else None
