"""torchvision's semantic segmentation builders as ``torchvision:ARCH`` models (FCN,
DeepLabV3, LR-ASPP), behind the same interface as the classification zoo.

The network is rebuilt around the library's parts (``DenseOutput``: its ``backbone`` and
``classifier`` under their own names, so torchvision's weight files load as they are) and
returns the class logits at the input's size as a plain tensor (torchvision returns a dict),
so the loop, ONNX export and predict treat it like any model. The auxiliary head is left out
(``aux_loss``), and so is its part of the pretrained file; no ImageNet backbone weights are
fetched behind the user's back (``weights_backbone=None``): ``model.pretrained`` loads the
whole network's (COCO with the VOC classes), the classifier's last layer re-initialised for
the dataset's classes.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.segmentation import LRASPP

from dltool.models.zoo import HEAD_ATTRIBUTE
from dltool.models.zoo.weights import WeightsSource

AUXILIARY = "aux_classifier."


class DenseOutput(nn.Module):
    """A torchvision segmentation network's ``backbone`` and ``classifier``: logits (N, K, H, W)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.backbone: nn.Module = model.backbone  # type: ignore[assignment]
        self.classifier: nn.Module = model.classifier  # type: ignore[assignment]
        self.whole_features = isinstance(model, LRASPP)  # LR-ASPP's head reads two feature maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        out = self.classifier(features if self.whole_features else features["out"])
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)


@cache
def architectures() -> list[str]:
    return sorted(torchvision.models.list_models(module=torchvision.models.segmentation))


def weight_tags(arch: str) -> list[str]:
    return list(torchvision.models.get_model_weights(arch).__members__)


def all_weight_tags() -> dict[str, list[str]]:
    return {arch: weight_tags(arch) for arch in architectures()}


def builder_keywords(arch: str) -> set[str] | None:
    """Keywords of the builder that dltool does not set itself."""
    import inspect

    builder = torchvision.models.get_model_builder(arch)
    taken = {"weights", "progress", "kwargs", "num_classes", "aux_loss", "weights_backbone"}
    return {p for p in inspect.signature(builder).parameters if p not in taken}


def preprocessing(arch: str, weights: bool | str) -> dict[str, Any]:
    """The weights' normalisation (ImageNet's) and RGB; their 520-px resize is left to ``data.image_size``."""
    if weights is False:
        return {"channels": 3}
    transform = _weights(arch, weights).transforms()
    return {"mean": [float(m) for m in transform.mean], "std": [float(s) for s in transform.std], "channels": 3}


def build(arch: str, kwargs: dict[str, Any], in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    del in_shape  # RGB, any size
    model = torchvision.models.get_model(
        arch, weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False, **kwargs
    )
    dense = DenseOutput(model)
    setattr(dense, HEAD_ATTRIBUTE, "classifier")
    return dense


def without_auxiliary(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A pretrained file's tensors less the auxiliary head's (trained with ``aux_loss``)."""
    return {name: tensor for name, tensor in state.items() if not name.startswith(AUXILIARY)}


def _weights(arch: str, weights: bool | str) -> Any:
    enum = torchvision.models.get_model_weights(arch)
    return enum.DEFAULT if weights is True else enum[weights]


def weights_source(arch: str, weights: bool | str) -> WeightsSource:
    chosen = _weights(arch, weights)
    return WeightsSource(
        label=f"torchvision:{arch} {chosen.name}",
        folder=Path(torch.hub.get_dir()) / "checkpoints",
        file_names=(os.path.basename(chosen.url),),
        url=chosen.url,
        num_classes=len(chosen.meta["categories"]),
    )
