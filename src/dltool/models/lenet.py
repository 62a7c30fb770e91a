"""LeNet-5 (LeCun et al. 1998), sized from the input instead of assuming 32×32."""

from __future__ import annotations

from torch import nn

from dltool.errors import ConfigError
from dltool.models.layers import LastLayerHead, activation_layer

POOLS: dict[str, type[nn.Module]] = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


def _side(size: int) -> tuple[int, int, int]:
    """Paddings of the two 5×5 convs along one side, and the side left after the second pool.

    The first conv pads 2 below 32 pixels (MNIST's 28 → 28 → 14, as usual) and not from 32 on
    (the original 32 → 28); the second keeps its original no padding when at least 10 pixels
    reach it (28 → 14 → 10 → 5: the classic 16×5×5), else pads 2 so that tiny inputs still fit
    (8 → 8 → 4 → 4 → 2).
    """
    pad1 = 2 if size < 32 else 0
    size = (size + 2 * pad1 - 4) // 2
    pad2 = 0 if size >= 10 else 2
    return pad1, pad2, (size + 2 * pad2 - 4) // 2


class LeNet5(LastLayerHead, nn.Sequential):
    """conv5 6 → pool → conv5 16 → pool → FC 120 → FC 84 → FC classes, one activation after each."""

    def __init__(self, *, activation: str, pool: str, in_shape: tuple[int, ...], num_classes: int):
        channels, height, width = in_shape
        if min(height, width) < 4:
            raise ConfigError(f"model lenet5: inputs must be at least 4×4 pixels (got {height}×{width})")
        (pad1_h, pad2_h, out_h), (pad1_w, pad2_w, out_w) = _side(height), _side(width)
        super().__init__(
            nn.Conv2d(channels, 6, 5, padding=(pad1_h, pad1_w)),
            activation_layer(activation),
            POOLS[pool](2),
            nn.Conv2d(6, 16, 5, padding=(pad2_h, pad2_w)),
            activation_layer(activation),
            POOLS[pool](2),
            nn.Flatten(),
            nn.Linear(16 * out_h * out_w, 120),
            activation_layer(activation),
            nn.Linear(120, 84),
            activation_layer(activation),
            nn.Linear(84, num_classes),
        )
