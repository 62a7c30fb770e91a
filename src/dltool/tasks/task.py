"""The interface a task implements: everything the commands need to know about its outputs.

One subclass of ``Task`` per task, in ``dltool/tasks/<name>.py``, registered in
``dltool/tasks/__init__.py`` with its metadata. Throughout, ``output`` is what the network
returns for a batch, ``images`` the normalised float input batch (N, C, H, W) and ``labels``
the batch's targets as the data layer yields them (int64 class indices (N,) for
classification, float (N, T) values for regression-like tasks, NaN where missing). Batch
methods run under ``torch.inference_mode`` or autograd as the caller decides, on the
batch's device, without syncing to the host (no ``.item()``): sums stay tensors so shards
evaluated on several ranks add up exactly.

What each method serves:

- ``out_features``: the ``num_classes`` the model builder gets (the head's width).
- ``target``: what the loss compares the output with (``labels``, or the images themselves).
- ``correct``: the training epoch's count of right answers, for ``train_acc`` (None: none).
- ``zero_sums`` / ``batch_sums`` / ``means``: validation and test scores — per-batch sums
  (always ``loss_sum``, the eval loss summed over samples; the same keys from both) and the
  means, with ``loss`` and ``n``.
- ``record``: the task's ``metrics.jsonl`` keys (``TaskParams.metrics``) from those means.
  The training epoch's means come from ``zero_sums`` with only ``loss_sum``, ``correct``
  (what ``correct`` counted) and ``n`` filled in: read only ``loss`` (and what ``correct``
  makes) from ``train``.
- ``preflight``: the sanity line about an untrained model's first loss.
- ``evaluate``: the eval document's task part, from a forward function and batches.
- ``figures``: what ``dltool visualize`` draws of a scored split (``Drawable``); matplotlib
  and the drawing functions (``dltool.figures``) are imported inside it, on first use.
- ``output_shape``: what one sample's output is, for an export's sidecar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
Forward = Callable[[torch.Tensor], torch.Tensor]
Figures = list[tuple[str, Any, str]]  # (file stem, matplotlib figure, caption)


@dataclass(frozen=True)
class Scored:
    """A split scored for ``dltool eval``: the document's task keys (``n`` and ``loss``
    included), and one row of ``outputs`` per sample where plots use them (a classifier's
    probabilities), else None."""

    document: dict[str, Any]
    outputs: np.ndarray | None = None


@dataclass(frozen=True)
class Drawable:
    """A scored split as ``dltool visualize`` hands it to ``Task.figures``.

    ``samples``: the split's images and targets in the model's class order (``len``,
    ``images`` (N, C, H, W) uint8, ``labels``, ``image(i)``, ``take(rows)``; a file split reads
    only the images asked for); ``outputs``: ``Scored.outputs``; ``mean``/``std``: the input
    normalisation; ``run``: the model as evaluation scores it, on uint8 images (K, C, H, W)
    normalised as evaluation feeds them, its output a float tensor on the CPU.
    """

    split: str
    document: dict[str, Any]
    samples: Any
    outputs: np.ndarray | None
    classes: list[str]
    mean: list[float]
    std: list[float]
    run: Callable[[np.ndarray], torch.Tensor]


class Task:
    """One task's behaviour; stateless (one shared instance per task)."""

    name: str
    export_output: str  # the exported graph's output name
    # What the exported output means, in words for the sidecar ({height}, {width}: the input's).
    export_meaning: str

    def out_features(self, classes: list[str]) -> int:
        """The width of the model's head for these class (or target) names."""
        return len(classes)

    def head_outputs(self, width: int) -> str:
        """What a head of ``width`` outputs predicts, as the log names a new head: '4 classes'."""
        return f"{width} classes"

    def target(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return labels

    # Whether training counts the correct predictions (``correct``): a classifier's accuracy.
    counts_correct = False

    def correct(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """How many of these outputs (one or many batches) are right (``counts_correct``)."""
        raise NotImplementedError(f"the {self.name} task counts no correct predictions")

    def zero_sums(self, confusion_classes: int, device: torch.device) -> dict[str, torch.Tensor]:
        """The sums of no batch at all: every key ``batch_sums`` returns, zero."""
        return {"loss_sum": torch.zeros((), dtype=torch.float64, device=device)}

    @staticmethod
    def zero_confusion(confusion_classes: int, device: torch.device) -> dict[str, torch.Tensor]:
        """For a task with a confusion matrix: its zero sum when ``confusion_classes`` asks for
        one (``confusion``, classes × classes counts), else nothing."""
        if not confusion_classes:
            return {}
        return {"confusion": torch.zeros(confusion_classes, confusion_classes, dtype=torch.int64, device=device)}

    def batch_sums(
        self, output: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, confusion_classes: int
    ) -> dict[str, torch.Tensor]:
        """Summable scores of one evaluation batch; ``confusion_classes`` > 0 asks for a
        ``confusion`` count tensor (rows true), where the task has one."""
        raise NotImplementedError

    def means(self, sums: dict[str, Any]) -> dict[str, float]:
        """``loss``, the task's scores and ``n`` from the sums (added over batches) with ``n``."""
        n = int(sums["n"])
        return {"loss": float(sums["loss_sum"]) / max(1, n), "n": n}

    def record(self, train: dict[str, float], val: dict[str, float]) -> dict[str, float]:
        """The epoch record's task metrics from the training and validation means."""
        return {}

    def preflight(self, loss: float, classes: list[str], source: str | None = None) -> str:
        """One line about the first batch's ``loss``; ``source``: the run or file the model's
        weights started from (``model.init_from``), where a low loss is no surprise."""
        return f"pre-flight: initial {self.name} loss {loss:.4f}"

    def evaluate(self, forward: Forward, batches: Batches, classes: list[str], std: list[float]) -> Scored:
        """The eval document's task part over ``batches`` (``std``: the input normalisation's)."""
        raise NotImplementedError

    def figures(self, scored: Drawable) -> Figures:
        """``dltool visualize``'s plots of a scored split (besides the training curves and
        the first layer's filters, which every run gets): (file stem, figure, caption) each."""
        return []

    def output_shape(self, classes: list[str], in_shape: tuple[int, int, int]) -> list[int]:
        return [self.out_features(classes)]
