"""The losses of the catalogue, as modules called ``loss_fn(output, target)``.

Classification: ``output`` is logits (N, K), ``target`` int64 labels (N,) or float target
distributions (N, K) (MixUp/CutMix); losses that compare distributions turn labels into
one-hot rows of K, and label smoothing mixes either with the uniform distribution.
Tasks on values (reconstruction, ...): ``output`` and ``target`` have the same shape; where
the task's values may be missing, NaN targets are left out of the mean.
Half-precision outputs (under autocast) are computed in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from dltool.errors import ConfigError
from dltool.losses import check_task
from dltool.tasks import info
from dltool.tasks.pixels import IGNORE


class Loss(nn.Module):
    """A catalogue loss: refuses, when built, a task it does not suit."""

    name: ClassVar[str]

    def __init__(self, task: str):
        super().__init__()
        check_task(self.name, task)
        self.task = task
        self.labels = info(task).target == "labels"  # class indices, else values to compare with
        self.missing = info(task).missing  # values may be NaN: left out of the mean


class CrossEntropy(Loss):
    """``F.cross_entropy`` with label smoothing and optional class weights.

    With weights, the batch mean is weighted too (divided by the targets' total weight),
    as in torch; with float target distributions (MixUp/CutMix) it is a plain mean of the
    weighted per-sample losses (torch's rule for probability targets).
    """

    name = "cross_entropy"

    def __init__(
        self,
        *,
        label_smoothing: float,
        class_weights: str | Sequence[float] | None,
        task: str = "classification",
        num_classes: int | None = None,
        class_counts: Sequence[int] | None = None,
    ):
        super().__init__(task)
        self.label_smoothing = label_smoothing
        self.weight: torch.Tensor | None
        self.register_buffer("weight", class_weight_tensor(class_weights, num_classes, class_counts), persistent=False)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        output = _full(output)
        weight = self.weight
        if weight is not None:
            if len(weight) != output.shape[1]:
                raise ConfigError(_weights_length_error(len(weight), output.shape[1]))
            weight = weight.to(output.dtype)
        if target.is_floating_point():
            target = target.to(output.dtype)
        # Masks (N, H, W) of class indices mark the pixels to ignore with 255.
        ignore = IGNORE if target.ndim > 1 and not target.is_floating_point() else -100
        return F.cross_entropy(output, target, weight=weight, ignore_index=ignore, label_smoothing=self.label_smoothing)


class NLL(Loss):
    """``F.nll_loss`` of ``log_softmax(logits)`` (cross-entropy, written as the course derives it)."""

    name = "nll"

    def __init__(
        self, *, task: str = "classification", num_classes: int | None = None, class_counts: Sequence[int] | None = None
    ):
        super().__init__(task)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(_full(output), dim=1)
        if target.is_floating_point():  # a target distribution: its expected NLL
            return -(target.to(log_p.dtype) * log_p).sum(1).mean()
        return F.nll_loss(log_p, target)


# Every loss takes the keywords the engine passes to all of them (task, num_classes,
# class_counts) besides its own: the constructors' likeness is that shared contract.
class _Smoothed(Loss):
    """A classification loss against (optionally smoothed) one-hot targets."""

    def __init__(
        self,
        *,
        label_smoothing: float,
        task: str = "classification",
        num_classes: int | None = None,
        class_counts: Sequence[int] | None = None,
    ):
        super().__init__(task)
        self.label_smoothing = label_smoothing


class BCEWithLogits(_Smoothed):
    """Sigmoid BCE of every logit against its one-hot target, averaged over the N·K entries.

    Label smoothing gives the same targets as ``cross_entropy``'s: 1−ε+ε/K and ε/K.
    """

    name = "bce_with_logits"

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        output = _full(output)
        return F.binary_cross_entropy_with_logits(output, smoothed_one_hot(target, output, self.label_smoothing))


class KLDiv(_Smoothed):
    """``KL(q ‖ softmax(logits))`` with q the (smoothed) one-hot targets, summed over classes,
    averaged over samples (``batchmean``). Without smoothing it equals the cross-entropy."""

    name = "kl_div"

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        output = _full(output)
        q = smoothed_one_hot(target, output, self.label_smoothing)
        return F.kl_div(F.log_softmax(output, dim=1), q, reduction="batchmean")


class _Distance(Loss):
    """An elementwise distance, averaged: image vs image, or softmax vs one-hot labels."""

    unit: torch.Tensor | None = None  # per output column: the error's unit (``in_units_of``)

    def __init__(
        self, *, task: str = "classification", num_classes: int | None = None, class_counts: Sequence[int] | None = None
    ):
        super().__init__(task)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        output = _full(output)
        if self.labels:
            output, target = output.softmax(dim=1), smoothed_one_hot(target, output, 0.0)
        elif output.shape != target.shape:
            raise ValueError(f"{self.name}: output {tuple(output.shape)} and target {tuple(target.shape)} differ")
        target = target.to(output.dtype)
        if self.unit is not None:
            output, target = output / self.unit, target / self.unit
        if self.missing:  # the mean over the values present (0 when none is)
            present = ~target.isnan()
            output, target = torch.where(present, output, 0.0), torch.where(present, target, 0.0)
            return self.distance(output, target) * (present.numel() / present.sum().clamp(min=1))
        return self.distance(output, target)

    def distance(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def in_units_of(self, unit: torch.Tensor) -> None:
        """Measure each output column's errors in its ``unit`` (a regression's standard
        deviations: a target in grams then weighs as much as one in years)."""
        self.unit = unit


class MSE(_Distance):
    name = "mse"

    def distance(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(output, target)


class L1(_Distance):
    name = "l1"

    def distance(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(output, target)


class SmoothL1(_Distance):
    name = "smooth_l1"

    def __init__(
        self,
        *,
        beta: float,
        task: str = "classification",
        num_classes: int | None = None,
        class_counts: Sequence[int] | None = None,
    ):
        super().__init__(task=task)
        self.beta = beta

    def distance(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.smooth_l1_loss(output, target, beta=self.beta)


def smoothed_one_hot(labels: torch.Tensor, logits: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Rows of K = ``logits.shape[1]``: 1−ε+ε/K at the label, ε/K elsewhere, in the logits' dtype.
    Float ``labels`` (N, K) are target distributions already: q·(1−ε) + ε/K."""
    k = logits.shape[1]
    one_hot = labels.to(logits.dtype) if labels.is_floating_point() else F.one_hot(labels, k).to(logits.dtype)
    return one_hot * (1 - smoothing) + smoothing / k if smoothing else one_hot


def class_weight_tensor(
    spec: str | Sequence[float] | None, num_classes: int | None, class_counts: Sequence[int] | None
) -> torch.Tensor | None:
    """Per-class weights: none, given, or ``balanced`` = n_samples / (n_classes · count).

    ``balanced`` is scikit-learn's formula; a class without training samples gets weight 0
    (it never appears as a training target).
    """
    if spec is None:
        return None
    if spec == "balanced":
        if class_counts is None:
            raise ConfigError(
                "loss.class_weights: 'balanced' needs the training set's class counts, which keypoints, "
                "regression values and streamed masks (data.loader stream) do not give: list the weights"
            )
        counts = torch.tensor(list(class_counts), dtype=torch.float64)
        if num_classes is not None and len(counts) != num_classes:
            raise ValueError(f"class_counts has {len(counts)} entries for {num_classes} classes")
        weights = torch.where(counts > 0, counts.sum() / (len(counts) * counts.clamp(min=1)), 0.0)
        return weights.float()
    if isinstance(spec, str):
        raise ConfigError(f"loss.class_weights: {spec!r} is not 'balanced' or a list of weights")
    if num_classes is not None and len(spec) != num_classes:
        raise ConfigError(_weights_length_error(len(spec), num_classes))
    return torch.tensor(list(spec), dtype=torch.float32)


def _weights_length_error(given: int, classes: int) -> str:
    return (
        f"loss.class_weights: {given} weights for {classes} classes; "
        "give one per class (in classes.json order) or use 'balanced'"
    )


def _full(output: torch.Tensor) -> torch.Tensor:
    return output.float() if output.dtype in (torch.float16, torch.bfloat16) else output
