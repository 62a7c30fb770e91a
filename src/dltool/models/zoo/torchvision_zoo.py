"""The ``torchvision:ARCH`` family: every classification builder of ``torchvision.models``.

Weights come through torch's own hub cache, ``$TORCH_HOME/hub/checkpoints/<file>``
(``~/.cache/torch`` without TORCH_HOME), the file torchvision itself would download.
"""

from __future__ import annotations

import inspect
import os
import typing
from functools import cache
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from dltool.models.zoo import HEAD_ATTRIBUTE, init_keywords
from dltool.models.zoo.weights import WeightsSource

# The attribute holding the classifier in torchvision's classification models, first match.
HEAD_ATTRIBUTES = ("fc", "classifier", "heads", "head")


@cache
def architectures() -> list[str]:
    return sorted(torchvision.models.list_models(module=torchvision.models))


def weight_tags(arch: str) -> list[str]:
    return list(torchvision.models.get_model_weights(arch).__members__)


def all_weight_tags() -> dict[str, list[str]]:
    return {arch: weight_tags(arch) for arch in architectures()}


def builder_keywords(arch: str) -> set[str] | None:
    """The builder's own keywords and those of the model class it returns, less the class count
    (set from the data); one the builder fills in itself fails when the model is built."""
    builder = torchvision.models.get_model_builder(arch)
    named = {p for p in inspect.signature(builder).parameters if p not in ("weights", "progress", "kwargs")}
    model_class = typing.get_type_hints(builder).get("return")
    if not isinstance(model_class, type):
        return None
    return named | init_keywords(model_class)


def _weights(arch: str, weights: bool | str) -> Any:
    enum = torchvision.models.get_model_weights(arch)
    return enum.DEFAULT if weights is True else enum[weights]


def preprocessing(arch: str, weights: bool | str) -> dict[str, Any]:
    """The weights' input (crop size, the crop's share of the resize, mean, std, RGB); without
    weights, RGB (the stem takes 3 channels)."""
    if weights is False:
        return {"channels": 3}
    transform = _weights(arch, weights).transforms()
    return {
        "image_size": int(transform.crop_size[0]),
        "crop_pct": transform.crop_size[0] / transform.resize_size[0],  # resize 256, crop 224: 0.875
        "mean": [float(m) for m in transform.mean],
        "std": [float(s) for s in transform.std],
        "channels": 3,
    }


def build(arch: str, kwargs: dict[str, Any], in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **kwargs)
    setattr(model, HEAD_ATTRIBUTE, next(name for name in HEAD_ATTRIBUTES if hasattr(model, name)))
    return model


def weights_source(arch: str, weights: bool | str) -> WeightsSource:
    chosen = _weights(arch, weights)
    url = chosen.url
    return WeightsSource(
        label=f"torchvision:{arch} {chosen.name}",
        folder=Path(torch.hub.get_dir()) / "checkpoints",
        file_names=(os.path.basename(url),),
        url=url,
        num_classes=len(chosen.meta["categories"]),
    )
