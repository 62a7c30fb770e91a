"""Which parameters an optimizer updates, and which of them get weight decay."""

from __future__ import annotations

from typing import Any

from torch import nn

from dltool.optim import OptimizerParams


def parameter_groups(model: nn.Module, params: OptimizerParams) -> list[dict[str, Any]]:
    """Trainable parameters; with ``decay_norm_and_bias: false``, the 1-D ones (biases and
    norm-layer scales, as timm decides) go in a group without weight decay."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if params.decay_norm_and_bias or params.weight_decay == 0:
        return [{"params": trainable}]
    return [
        {"params": [p for p in trainable if p.ndim > 1]},
        {"params": [p for p in trainable if p.ndim <= 1], "weight_decay": 0.0},
    ]
