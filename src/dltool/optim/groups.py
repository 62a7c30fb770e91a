"""Which parameters an optimizer updates, with which learning rate and weight decay."""

from __future__ import annotations

from typing import Any

from torch import nn

from dltool.models.freezing import in_head
from dltool.optim import OptimizerParams


def parameter_groups(model: nn.Module, params: OptimizerParams, head: str | None = None) -> list[dict[str, Any]]:
    """Trainable parameters, in groups that differ in learning rate or weight decay.

    With ``head`` (the classifier's module name) and ``backbone_lr_scale`` ≠ 1, the head's
    parameters come first at ``lr`` and the rest follow at ``backbone_lr_scale × lr``;
    schedules scale every group's own rate, so both follow the same curve. With
    ``decay_norm_and_bias: false``, the 1-D ones (biases and norm-layer scales, as timm
    decides) go in groups without weight decay.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    parts: list[tuple[list[nn.Parameter], dict[str, Any]]] = [([p for _, p in named], {})]
    if head is not None and params.backbone_lr_scale != 1:
        parts = [
            ([p for n, p in named if in_head(n, head)], {}),
            ([p for n, p in named if not in_head(n, head)], {"lr": params.lr * params.backbone_lr_scale}),
        ]
    if not params.decay_norm_and_bias and params.weight_decay != 0:
        parts = [
            piece
            for members, options in parts
            for piece in (
                ([p for p in members if p.ndim > 1], options),
                ([p for p in members if p.ndim <= 1], {**options, "weight_decay": 0.0}),
            )
        ]
    return [{"params": members, **options} for members, options in parts if members]
