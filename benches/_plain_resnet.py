"""torchvision's ResNet-18 as a dltool registry entry, for benches/finetune_throughput.py.

The bench was written before the model zoo (``torchvision:resnet18``) reached main; this
entry builds the same network from torchvision's plain constructor, random weights.
"""

from __future__ import annotations

from torch import nn

from dltool.models import ModelParams, models

NAME = "bench-torchvision-resnet18"


class PlainResNet18Params(ModelParams):
    """torchvision's ResNet-18 (random weights), for the fine-tuning throughput bench."""


def resnet18(*, in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    from torchvision.models import resnet18 as build

    del in_shape  # global average pooling: any size from 32×32 up
    model = build(num_classes=num_classes)
    model.dltool_head = "fc"
    return model


if NAME not in models:
    models.register(NAME, "_plain_resnet:resnet18")(PlainResNet18Params)
