"""Motion-checkpoint layouts the official Live2Diff loader reads besides the plain one: no PE tables, the 2D
UNet keys too (a whole UNet3D state dict), and the q_pe/k_pe/v_pe buffers of its streaming attention.

Each is compared with the plain layout loaded through our loader and with ``official_rules``, a literal
replay of what the official loader does (live2diff/animatediff/pipeline/pipeline_animatediff_depth.py,
``build_pipeline``): a UNet3D built from the SD1.5 folder with freshly built ``PositionalEncoding`` tables,
``module.`` stripped and ``grid`` keys dropped, ``load_state_dict(state, strict=False)`` with no unexpected
key allowed, then the DreamBooth loaded over the 2D keys (``load_third_party_checkpoints``).
"""

from __future__ import annotations

import logging
import math

import pytest
import torch
from formats import (
    MOTION_HEADS,
    diffusers_motion_to_original,
    tiny_depth_encoder,
    tiny_motion_unet,
    tiny_unet2d,
    write_motion_file,
)
from safetensors.torch import save_file

from l2d_obs.errors import CheckpointError
from l2d_obs.weights.checkpoint import read_state_dict
from l2d_obs.weights.motion import build_motion_unet, load_unet2d_keys, map_original_motion_checkpoint, motion_positions


WINDOW = 16  # attention_kwargs.window_size of Live2Diff's configs/base_config.yaml: the length of q_pe & co.


# --- the official rules, replayed --------------------------------------------------------------------

def official_positional_encoding(d_model: int, max_len: int) -> torch.Tensor:
    """live2diff/animatediff/models/positional_encoding.py, PositionalEncoding.__init__."""
    position = torch.arange(max_len).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(1, max_len, d_model)
    pe[0, :, 0::2] = torch.sin(position * div_term)
    pe[0, :, 1::2] = torch.cos(position * div_term)
    return pe


def _official_names(template) -> dict[str, str]:
    """Original (UNet3D) motion-module name -> UNetMotionModel name, from the test's own writer."""
    state = template.state_dict()
    tagged = {k: torch.tensor(float(i)) for i, k in enumerate(state) if ".motion_modules." in k}
    back = {float(v): k for k, v in tagged.items()}
    return {orig: back[float(t)] for orig, t in diffusers_motion_to_original(tagged).items()}


def official_rules(sd15_state, ckpt, template, dreambooth_state=None, max_len: int = 24) -> dict[str, torch.Tensor]:
    """The UNet the official loader ends with, in UNetMotionModel names. ``template`` gives the motion
    modules' names and shapes only (the UNet3D's own init values; every test file overwrites them)."""
    names = _official_names(template)
    model = {k: v.clone() for k, v in sd15_state.items()}  # from_pretrained_2d: the 2D keys keep diffusers' names
    template_state = template.state_dict()
    for orig, ours in names.items():
        model[orig] = (
            official_positional_encoding(template_state[ours].shape[2], max_len)
            if orig.endswith("pos_encoder.pe")
            else torch.full_like(template_state[ours], float("nan"))
        )
    # cond_mapping: true builds E_cond as flow_conv_in (its values are compared elsewhere)
    model.update({f"flow_conv_in.{k}": v for k, v in tiny_depth_encoder().state_dict().items()})
    state = {k.replace("module.", ""): v for k, v in ckpt.items() if "grid" not in k}
    unexpected = [k for k in state if k not in model]
    assert not unexpected, f"Find unexpected keys ({len(unexpected)}): {unexpected}"
    for k, v in state.items():  # load_state_dict copies into the existing (fp32) tensors
        assert v.shape == model[k].shape, k
        model[k] = v.to(model[k].dtype)
    for k, v in (dreambooth_state or {}).items():
        model[k] = v.clone()
    out: dict[str, torch.Tensor] = {}
    for k, v in model.items():
        if k.startswith("flow_conv_in."):
            continue
        ours = names.get(k, k)
        if ours in out:  # diffusers keeps one table where the original keeps one per attention
            assert torch.equal(out[ours], v), ours
        out[ours] = v
    return out


# --- helpers ----------------------------------------------------------------------------------------

def _save(path, state):
    state = {k: v.contiguous() for k, v in state.items()}
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({"state_dict": state, "global_step": 1}, str(path))
    return path


def _load(path, base=None, **kwargs):
    weights = map_original_motion_checkpoint(read_state_dict(path), path, **kwargs)
    return weights, build_motion_unet(base if base is not None else tiny_unet2d(), weights, MOTION_HEADS)


def assert_states_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].shape == b[k].shape, k
        assert torch.equal(a[k].float(), b[k].float()), k


@pytest.fixture
def plain(tmp_path):
    """The plain layout (motion modules with PE tables, E_cond) and what our loader makes of it."""
    motion_unet = tiny_motion_unet(tiny_unet2d())
    file = write_motion_file(tmp_path / "plain.ckpt", motion_unet, tiny_depth_encoder(), module_prefix=True)
    _, loaded = _load(file)
    return motion_unet, read_state_dict(file), loaded.state_dict()


# --- 1. no pos_encoder.pe ---------------------------------------------------------------------------

def test_a_file_without_pe_tables_loads_as_the_plain_file(tmp_path, plain, caplog):
    motion_unet, state, expected = plain
    stripped = {k: v for k, v in state.items() if not k.endswith("pos_encoder.pe")}
    assert len(stripped) < len(state)
    file = _save(tmp_path / "no-pe.ckpt", stripped)
    with caplog.at_level(logging.INFO, logger="l2d_obs.weights.motion"):
        weights, loaded = _load(file)
    assert weights.max_seq_length == 24
    assert_states_equal(loaded.state_dict(), expected)
    assert_states_equal(loaded.state_dict(), official_rules(tiny_unet2d().state_dict(), stripped, motion_unet))
    assert "computed them as the official PositionalEncoding does (length 24)" in caplog.text


def test_a_file_without_pe_tables_takes_the_configured_length(tmp_path):
    motion_unet = tiny_motion_unet(tiny_unet2d(), max_seq_length=32)
    state = diffusers_motion_to_original(motion_unet.state_dict())
    stripped = _save(tmp_path / "no-pe.safetensors", {k: v for k, v in state.items() if not k.endswith(".pe")})
    weights, loaded = _load(stripped, default_max_seq_length=32)
    assert weights.max_seq_length == 32
    assert_states_equal(loaded.state_dict(), motion_unet.state_dict())
    # the profile check of the window reads the length from the header: the default for a file without tables
    assert motion_positions(stripped) == 24


# --- 2. the 2D UNet keys too ------------------------------------------------------------------------

def test_a_whole_unet_file_keeps_the_base_2d_weights_by_default(tmp_path, plain, caplog):
    motion_unet, state, expected = plain
    tuned = tiny_unet2d(seed=5).state_dict()  # the 2D weights a whole-UNet file carries (fine-tuned here)
    whole = {**state, **{f"module.{k}": v for k, v in tuned.items()}}
    file = _save(tmp_path / "whole.ckpt", whole)
    with caplog.at_level(logging.INFO, logger="l2d_obs.weights.motion"):
        weights, loaded = _load(file)
    assert len(weights.unet2d_state) == len(tuned) and set(weights.unet_state) == {
        k for k in motion_unet.state_dict() if ".motion_modules." in k
    }
    assert_states_equal(loaded.state_dict(), expected)
    # official: the 2D keys go over SD1.5, then the DreamBooth (here: the base) goes over them
    base = tiny_unet2d().state_dict()
    sd15 = tiny_unet2d(seed=7).state_dict()
    assert_states_equal(loaded.state_dict(), official_rules(sd15, whole, motion_unet, dreambooth_state=base))
    assert f"its {len(tuned)} 2D UNet key(s) fit the base and are not used" in caplog.text


def test_a_whole_unet_file_over_a_plain_sd15_base(tmp_path, plain, caplog):
    motion_unet, state, expected = plain
    tuned = tiny_unet2d(seed=5).state_dict()
    whole = {**state, **tuned}
    file = _save(tmp_path / "whole.safetensors", whole)
    weights = map_original_motion_checkpoint(read_state_dict(file), file)
    base = tiny_unet2d()
    with caplog.at_level(logging.INFO, logger="l2d_obs.weights.motion"):
        assert load_unet2d_keys(base, weights) == len(tuned)
        loaded = build_motion_unet(base, weights, MOTION_HEADS)
    assert "replace the base's (the official strict=False load)" in caplog.text
    assert "are not used" not in caplog.text
    result = loaded.state_dict()
    assert_states_equal(result, official_rules(tiny_unet2d().state_dict(), whole, motion_unet))
    assert_states_equal(result, {**expected, **tuned})
    # a file carrying the base's own 2D weights: the same as the plain file, whichever way it is loaded
    same = _save(tmp_path / "same.safetensors", {**state, **tiny_unet2d().state_dict()})
    assert_states_equal(_load(same)[1].state_dict(), expected)
    weights = map_original_motion_checkpoint(read_state_dict(same), same)
    base = tiny_unet2d()
    load_unet2d_keys(base, weights)
    assert_states_equal(build_motion_unet(base, weights, MOTION_HEADS).state_dict(), expected)


def test_2d_keys_that_do_not_fit_the_base_are_refused(tmp_path, plain):
    _, state, _ = plain
    base_state = tiny_unet2d().state_dict()
    bad_shape = dict(base_state, **{"conv_in.weight": torch.zeros(8, 4, 3, 3)})
    for name, extra in (("shape", bad_shape), ("name", {"down_blocks.0.attentions.0.extra.weight": torch.zeros(3)})):
        file = _save(tmp_path / f"bad-{name}.safetensors", {**state, **extra})
        weights = map_original_motion_checkpoint(read_state_dict(file), file)
        for attempt in (lambda: build_motion_unet(tiny_unet2d(), weights, MOTION_HEADS), lambda: load_unet2d_keys(tiny_unet2d(), weights)):
            with pytest.raises(CheckpointError) as err:
                attempt()
            assert "\n" not in str(err.value) and str(file) in str(err.value)
            assert ("conv_in.weight (8, 4, 3, 3)" if name == "shape" else "extra.weight") in str(err.value)


# --- 3. q_pe / k_pe / v_pe --------------------------------------------------------------------------

def _with_derived(state: dict, window: int = WINDOW, dtype=torch.float32) -> dict:
    """The buffers ``StreamTemporalAttention.prepare_pe_buffer`` registers, computed as it does (after the
    official wrapper has cast the UNet to ``dtype``)."""
    out = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}
    for key in list(out):
        if key.endswith("pos_encoder.pe"):
            attn = key[: -len("pos_encoder.pe")]
            pe = out[key][:, :window]
            for p in "qkv":
                out[f"{attn}{p}_pe"] = torch.nn.functional.linear(pe, out[f"{attn}to_{p}.weight"])
    return out


def test_matching_derived_pe_buffers_are_checked_and_dropped(tmp_path, plain):
    _, state, expected = plain
    with_derived = _with_derived(state)
    assert sum(k.endswith("_pe") for k in with_derived) == 3 * sum(k.endswith("pos_encoder.pe") for k in state)
    file = _save(tmp_path / "with-qkv-pe.ckpt", with_derived)
    weights, loaded = _load(file)
    assert not any(k.endswith(("q_pe", "k_pe", "v_pe")) for k in weights.unet_state)
    assert_states_equal(loaded.state_dict(), expected)
    # a half-precision file whose buffers the official code computed in half precision
    half = _save(tmp_path / "with-qkv-pe-fp16.safetensors", _with_derived(state, dtype=torch.float16))
    _, loaded_half = _load(half)
    torch.testing.assert_close(loaded_half.state_dict(), expected, atol=2e-3, rtol=2e-3)


def test_derived_pe_buffers_of_another_model_are_refused_in_one_line(tmp_path, plain):
    _, state, _ = plain
    good = _with_derived(state)
    other = _with_derived(diffusers_motion_to_original(tiny_motion_unet(tiny_unet2d(), seed=9).state_dict()))
    k_pe = sorted(k for k in good if k.endswith("k_pe"))
    # two bad buffers: the message names the first one in key order
    bad = {**good, k_pe[-1]: other[k_pe[-1].replace("module.", "")], k_pe[0]: other[k_pe[0].replace("module.", "")]}
    file = _save(tmp_path / "foreign-qkv-pe.ckpt", bad)
    with pytest.raises(CheckpointError) as err:
        map_original_motion_checkpoint(read_state_dict(file), file)
    message = str(err.value)
    assert "\n" not in message and str(file) in message and f"'{k_pe[0]}'" in message and k_pe[-1] not in message
    assert "another model" in message
    # a buffer of the right values but the wrong width is refused the same way
    wrong = {**good, k_pe[0]: good[k_pe[0]][..., :-1]}
    file = _save(tmp_path / "narrow-qkv-pe.ckpt", wrong)
    with pytest.raises(CheckpointError, match=r"k_pe' does not match its attention \(shape"):
        map_original_motion_checkpoint(read_state_dict(file), file)
