"""Multi-layer perceptron: the course's first network."""

from __future__ import annotations

import math

from torch import nn

from dltool.models.layers import LastLayerHead, activation_layer


class MLP(LastLayerHead, nn.Sequential):
    """Flatten → (Linear → [BatchNorm] → activation → [Dropout]) × depth → Linear."""

    def __init__(
        self,
        *,
        depth: int,
        width: int,
        activation: str,
        dropout: float,
        batch_norm: bool,
        in_shape: tuple[int, ...],
        num_classes: int,
    ):
        layers: list[nn.Module] = [nn.Flatten()]
        features = math.prod(in_shape)
        for _ in range(depth):
            layers.append(nn.Linear(features, width, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(activation_layer(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            features = width
        layers.append(nn.Linear(features, num_classes))
        super().__init__(*layers)
