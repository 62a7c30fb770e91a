"""Test-time augmentation (``train.tta``): what a classifier is scored and used with.

``flip`` averages the logits of each image and its left-right mirror (airbench's
``tta_level=1``), at the cost of a second forward pass. Training itself never sees the
wrapper; validation, the test score, ``eval`` and ``predict`` do.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

MODES = ("none", "flip")  # train.tta's values


class FlipAverage(nn.Module):
    """``module``'s logits averaged over each image and its left-right mirror."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, (self.module(images) + self.module(images.flip(-1))) / 2)


def with_tta(model: nn.Module, tta: str) -> nn.Module:
    """``model`` as ``tta`` (``none`` or ``flip``) scores it."""
    if tta == "none":
        return model
    if tta == "flip":
        return FlipAverage(model)
    raise ValueError(f"unknown test-time augmentation {tta!r}; expected one of {', '.join(MODES)}")
