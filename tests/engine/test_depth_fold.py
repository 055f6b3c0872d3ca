"""BiT weight standardisation folded once at placement (issue 10 item 6, the DPT part).

A tiny DPT-hybrid (transformers' real DPT + BiT code, random weights, no downloads) stands in for
MiDaS DPT-hybrid: it has the same layer kinds, 13 weight-standardised convs instead of 52.
"""

from __future__ import annotations

import copy
from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from l2d_obs.bench.opcount import OpCounter
from transformers.models.bit.modeling_bit import WeightStandardizedConv2d

from l2d_obs.engine.depth import TransformersDepthEstimator, build_tiny_dpt
from l2d_obs.engine.depth_fold import PrestandardizedConv2d, fold_weight_standardization, standardize_weight
from l2d_obs.engine.stream import EngineSettings, StreamEngine
from l2d_obs.engine.tiny import build_tiny_components

from .helpers import moving_frames, rel_err

TINY_HYBRID_CONVS = 13  # stem 1 + 3 bottlenecks x 3 + 3 downsamples


def tiny_hybrid_dpt(seed: int = 0, image_size: int = 32) -> TransformersDepthEstimator:
    """About the smallest DPT-hybrid transformers builds: BiT 8/16/32/64 wide, one block per stage,
    a 2-layer ViT over the 2x2 feature map."""
    from transformers import DPTConfig, DPTForDepthEstimation

    bit = dict(embedding_size=8, hidden_sizes=[16, 32, 64], depths=[1, 1, 1], num_groups=2, layer_type="bottleneck",
               global_padding="SAME", embedding_dynamic_padding=True, out_features=["stage1", "stage2", "stage3"])
    feature = image_size // 16
    config = DPTConfig(is_hybrid=True, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       image_size=image_size, patch_size=16, backbone_config=bit,
                       backbone_featmap_shape=[1, 64, feature, feature], neck_hidden_sizes=[16, 32, 32, 32],
                       reassemble_factors=[1, 1, 1, 0.5], fusion_hidden_size=16, backbone_out_indices=[0, 0, 0, 1],
                       head_in_index=-1, initializer_range=0.1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DPTForDepthEstimation(config)
        # Give every conv its own scale and offset: standardisation then changes the weights a lot,
        # so a fold that got the statistics wrong could not pass for right.
        for module in model.modules():
            if isinstance(module, WeightStandardizedConv2d):
                with torch.no_grad():
                    module.weight.mul_(torch.rand(()) * 3 + 0.1).add_(torch.randn(()) * 0.05)
    return TransformersDepthEstimator(model, input_size=(image_size, image_size))


def images(n: int = 2, size: int = 40, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def count(model: torch.nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


class ConvWeightSpy(TorchDispatchMode):
    """The weight each convolution actually runs with."""

    def __init__(self) -> None:
        super().__init__()
        self.weights: list[torch.Tensor] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket is torch.ops.aten.convolution:
            self.weights.append(args[1].detach().clone())
        return func(*args, **(kwargs or {}))


def ops_of_one_forward(estimator: TransformersDepthEstimator) -> Counter[str]:
    x = images(1)
    with torch.no_grad(), OpCounter() as counter:
        estimator.estimate(x)
    return counter.ops


def test_placing_folds_every_standardised_conv_and_keeps_the_output():
    unfolded = tiny_hybrid_dpt()
    folded = copy.deepcopy(unfolded)
    assert count(unfolded.model, WeightStandardizedConv2d) == TINY_HYBRID_CONVS
    state_keys = set(unfolded.model.state_dict())

    folded.to("cpu", torch.float32)

    assert count(folded.model, WeightStandardizedConv2d) == 0
    assert count(folded.model, PrestandardizedConv2d) == TINY_HYBRID_CONVS
    assert set(folded.model.state_dict()) == state_keys  # same keys: exports and reloads keep working
    x = images()
    reference, result = unfolded.estimate(x), folded.estimate(x)
    assert reference.std() > 0
    assert rel_err(result, reference) < 1e-5
    # The stored weights really are the standardised ones (not the raw weights used as they were).
    stem_raw = unfolded.model.dpt.embeddings.backbone.bit.embedder.convolution
    stem_folded = folded.model.dpt.embeddings.backbone.bit.embedder.convolution
    assert isinstance(stem_folded, PrestandardizedConv2d) and stem_folded.pad is not None  # dynamic SAME padding kept
    per_channel = stem_folded.weight.flatten(1)
    assert per_channel.mean(1).abs().max() < 1e-5
    assert (per_channel.var(1, unbiased=False) - 1).abs().max() < 1e-3
    assert rel_err(stem_raw.weight.detach(), stem_folded.weight.detach()) > 0.5


def test_a_baseline_placement_can_keep_the_per_frame_standardisation():
    estimator = tiny_hybrid_dpt().to("cpu", torch.float32, fold=False)
    assert count(estimator.model, WeightStandardizedConv2d) == TINY_HYBRID_CONVS


def test_a_second_placement_folds_nothing_and_changes_nothing():
    estimator = tiny_hybrid_dpt().to("cpu", torch.float32)
    before = {k: v.clone() for k, v in estimator.model.state_dict().items()}
    assert fold_weight_standardization(estimator.model) == 0
    estimator.to("cpu", torch.float32)
    after = estimator.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_frame_runs_no_weight_standardisation_ops():
    unfolded = tiny_hybrid_dpt()
    folded = copy.deepcopy(unfolded).to("cpu", torch.float32)
    before, after = ops_of_one_forward(unfolded), ops_of_one_forward(folded)
    norms_before = sum(n for name, n in before.items() if "batch_norm" in name)
    norms_after = sum(n for name, n in after.items() if "batch_norm" in name)
    assert norms_before == TINY_HYBRID_CONVS  # one batch-norm over the weight per conv, every frame
    assert norms_after == 0
    assert before["convolution"] == after["convolution"]
    assert sum(after.values()) <= sum(before.values()) - TINY_HYBRID_CONVS * 3  # reshape, norm, reshape back


@pytest.mark.parametrize("build", [lambda: build_tiny_dpt(3), "training-small"], ids=["tiny-dpt", "training-small-dpt"])
def test_models_without_standardised_convs_are_left_alone(build):
    if build == "training-small":
        from l2d_obs.training.sizes import new_depth_estimator, size_named

        estimator = new_depth_estimator(size_named("small"))
    else:
        estimator = build()
    untouched = copy.deepcopy(estimator)
    estimator.to("cpu", torch.float32)
    kinds = [type(m) for m in estimator.model.modules()]
    assert kinds == [type(m) for m in untouched.model.modules()]
    assert PrestandardizedConv2d not in kinds
    x = images()
    assert torch.equal(estimator.estimate(x), untouched.estimate(x))


def _fp16_weights(scale: float) -> torch.Tensor:
    """Conv weights as a trained BiT may hold them: standardisation makes their scale irrelevant to
    the model, so nothing keeps them large; one dead (all-zero) output channel."""
    w = torch.randn(32, 16, 3, 3, generator=torch.Generator().manual_seed(0)) * scale
    w[0] = 0.0
    return w


@pytest.mark.parametrize("scale", [1e-5, 1e-6])
def test_fp16_standardised_in_fp32_stays_exact_where_the_per_frame_fp16_path_loses_precision(scale):
    weights = _fp16_weights(scale)
    eps = 1e-8  # BiT's bottleneck convs
    flat = weights.double().flatten(1)  # the reference, in float64 and written out
    centred = flat - flat.mean(1, keepdim=True)
    exact = (centred / torch.sqrt(centred.pow(2).mean(1, keepdim=True) + eps)).view_as(weights).float()
    # Folded: standardised in fp32 from the stored fp32 weights, then cast to fp16.
    folded = standardize_weight(weights, eps).half()
    # Unfolded in fp16: the weights are cast first, then the layer re-standardises them every frame.
    conv = WeightStandardizedConv2d(16, 32, 3, eps=eps).half()
    with torch.no_grad():
        conv.weight.copy_(weights.half())
    with torch.no_grad(), ConvWeightSpy() as spy:
        conv(torch.zeros(1, 16, 4, 4, dtype=torch.float16))
    unfolded = spy.weights[0].float()

    assert torch.isfinite(folded).all()
    assert rel_err(folded.float()[1:], exact[1:]) < 1e-3  # fp16 rounding of unit-scale values only
    assert rel_err(unfolded[1:], exact[1:]) > 8 * rel_err(folded.float()[1:], exact[1:])  # subnormal inputs
    assert torch.equal(folded[0].float(), torch.zeros_like(folded[0].float()))
    # The eps itself: 1e-8 is zero in fp16, but torch's fp16 batch-norm kernel takes eps as a double and
    # accumulates in fp32, so the dead channel stays finite (0) on this path too: the underflow the issue
    # names does not happen in the kernel; the loss is the fp16-cast input above.
    assert torch.tensor(eps, dtype=torch.float16).item() == 0.0
    assert torch.isfinite(unfolded).all() and torch.equal(unfolded[0], torch.zeros_like(unfolded[0]))


def test_the_engine_build_path_folds_the_depth_estimator():
    """start and bench build engines through StreamEngine, which places every part: a hybrid DPT
    there ends up folded and gives the unfolded model's depth."""
    reference = tiny_hybrid_dpt(seed=4)
    hybrid = copy.deepcopy(reference)
    components = build_tiny_components(0, depth=True)
    components.depth_estimator = hybrid
    settings = EngineSettings(width=32, height=32, prompt="a tiny test style", t_index_list=(30, 40), window=16, warmup=2)

    engine = StreamEngine(components, settings, device="cpu", dtype=torch.float32)
    try:
        assert count(hybrid.model, WeightStandardizedConv2d) == 0
        assert count(hybrid.model, PrestandardizedConv2d) == TINY_HYBRID_CONVS
        x = images(1, 32)
        assert rel_err(hybrid.estimate(x), reference.estimate(x)) < 1e-5
        for frame in moving_frames(3):
            engine.push(frame)
    finally:
        engine.close()


def test_a_loaded_hybrid_folder_is_folded_when_placed(tmp_path):
    from l2d_obs.weights.aux_models import load_depth_estimator

    reference = tiny_hybrid_dpt(seed=5)
    reference.model.save_pretrained(tmp_path / "dpt")
    loaded = load_depth_estimator(tmp_path / "dpt")
    assert count(loaded.model, WeightStandardizedConv2d) == TINY_HYBRID_CONVS  # folding waits for placement
    loaded.to("cpu", torch.float32)
    assert count(loaded.model, WeightStandardizedConv2d) == 0
    x = images()
    assert rel_err(loaded.estimate(x), reference.estimate(x)) < 1e-5
