"""BiT's weight standardisation folded into plain convolutions, once, when a depth model is placed.

MiDaS DPT-hybrid's backbone (transformers' BiT) uses ``WeightStandardizedConv2d``: every forward
re-standardises each conv's weight (a batch-norm over the weight, per output channel) before
convolving — 52 weight ops a frame that always give the same answer at inference. Folding computes
the standardised weights once, in fp32 from the stored weights, and swaps in convs that use them as
they are. Standardising before the fp16 cast also spares the small raw weights fp16's subnormal range.

Models without those convs (plain DPT, Depth-Anything, the project's own small DPT) are left as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PrestandardizedConv2d(nn.Conv2d):
    """A BiT conv whose weight was standardised at load: the same output, no weight ops per call.

    Keeps the source's optional dynamic "SAME" padding module; the state-dict keys stay the same
    (``weight``, ``bias``), holding the standardised values.
    """

    def __init__(self, source: nn.Conv2d, standardized_weight: torch.Tensor) -> None:
        super().__init__(
            source.in_channels,
            source.out_channels,
            source.kernel_size,
            stride=source.stride,
            padding=source.padding,
            dilation=source.dilation,
            groups=source.groups,
            bias=source.bias is not None,
            padding_mode=source.padding_mode,
            device="meta",  # the parameters are replaced below: allocate nothing twice
        )
        self.weight = nn.Parameter(standardized_weight, requires_grad=source.weight.requires_grad)
        if source.bias is not None:
            self.bias = source.bias
        self.pad = getattr(source, "pad", None)

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            hidden_state = self.pad(hidden_state)
        return self._conv_forward(hidden_state, self.weight, self.bias)


def standardize_weight(weight: torch.Tensor, eps: float) -> torch.Tensor:
    """BiT's per-output-channel standardisation (biased variance, as its batch-norm call), in fp32,
    returned in the weight's own dtype."""
    flat = weight.detach().float().reshape(1, weight.shape[0], -1)
    standardized = F.batch_norm(flat, None, None, training=True, momentum=0.0, eps=eps)
    return standardized.reshape(weight.shape).to(weight.dtype)


def _weight_standardized_conv_class() -> type | None:
    try:
        from transformers.models.bit.modeling_bit import WeightStandardizedConv2d
    except ImportError:  # a transformers without BiT has no such layers to fold
        return None
    return WeightStandardizedConv2d


def fold_weight_standardization(model: nn.Module) -> int:
    """Replace every BiT ``WeightStandardizedConv2d`` in ``model`` by a ``PrestandardizedConv2d``.

    Returns how many were folded (0 for models without them; a second call finds none). Meant for
    inference: a folded conv trains as a plain conv, no longer re-standardising its weight.
    """
    standardized_class = _weight_standardized_conv_class()
    if standardized_class is None:
        return 0
    targets = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, standardized_class)
    ]
    with torch.no_grad():
        for parent, name, conv in targets:
            setattr(parent, name, PrestandardizedConv2d(conv, standardize_weight(conv.weight, conv.eps)))
    return len(targets)
