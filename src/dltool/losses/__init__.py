"""The loss catalogue: torch's loss modules, one table row each."""

from __future__ import annotations

from pydantic import Field

from dltool._registry import Registry
from dltool.params import Params


class LossParams(Params):
    """Fields every loss shares."""


losses: Registry[LossParams] = Registry("losses", LossParams)


@losses.register("cross_entropy", "torch.nn:CrossEntropyLoss")
class CrossEntropyParams(LossParams):
    """Cross-entropy on logits, with optional label smoothing."""

    label_smoothing: float = Field(0.0, ge=0, lt=1)
