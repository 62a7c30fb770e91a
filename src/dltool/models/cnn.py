"""A plain convolutional network: VGG-style stages, then global average pooling."""

from __future__ import annotations

from torch import nn

from dltool.models.layers import LastLayerHead, activation_layer


def conv_bn_act(in_channels: int, out_channels: int, activation: str, stride: int = 1) -> nn.Sequential:
    """3×3 convolution (no bias: the BN shifts) → BatchNorm → activation."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        activation_layer(activation),
    )


class CNN(LastLayerHead, nn.Sequential):
    """(conv-BN-activation × ``convs_per_stage`` → 2×2 max-pool → dropout) per width → GAP → linear.

    A stage pools only while its feature map is at least 2 pixels on both sides, so the same
    widths fit 8×8 digits (8 → 4 → 2 → 1) and 224×224 images (224 → 112 → 56 → 28);
    the global average pool makes the head independent of what is left.
    """

    def __init__(
        self,
        *,
        widths: list[int],
        convs_per_stage: int,
        activation: str,
        dropout: float,
        in_shape: tuple[int, ...],
        num_classes: int,
    ):
        channels, height, width = in_shape
        layers: list[nn.Module] = []
        for stage_width in widths:
            for _ in range(convs_per_stage):
                layers.append(conv_bn_act(channels, stage_width, activation))
                channels = stage_width
            if min(height, width) >= 2:
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
        super().__init__(*layers)
