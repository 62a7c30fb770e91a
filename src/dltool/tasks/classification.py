"""Classification: one class per image, logits (N, classes) against int64 labels."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dltool.tasks.metrics import ECE_BINS, classification_metrics, one_vs_rest_scores, reliability_bins, top_choice
from dltool.tasks.task import Batches, Drawable, Figures, Forward, Scored, Task

# An untrained classifier should be unsure: its loss near ln(classes). Outside these
# bounds (as multiples of ln(classes)) the output layer's scale or the labels are suspect.
PREFLIGHT_BOUNDS = (0.5, 1.5)


class Classification(Task):
    name = "classification"
    export_output = "logits"
    export_meaning = (
        "one logit per class, in the order of classes: their softmax is the probabilities dltool predict reports"
    )
    counts_correct = True

    def correct(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # Mixed (soft) targets count as their heaviest class.
        return (output.argmax(1) == (labels.argmax(1) if labels.ndim == 2 else labels)).sum()

    def zero_sums(self, confusion_classes: int, device: torch.device) -> dict[str, torch.Tensor]:
        correct = {"correct": torch.zeros((), dtype=torch.int64, device=device)}
        return super().zero_sums(confusion_classes, device) | correct | self.zero_confusion(confusion_classes, device)

    def batch_sums(
        self, output: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, confusion_classes: int
    ) -> dict[str, torch.Tensor]:
        predicted = output.argmax(1)
        sums = {
            "loss_sum": F.cross_entropy(output.float(), labels, reduction="sum").double(),
            "correct": (predicted == labels).sum(),
        }
        if confusion_classes:
            pairs = torch.bincount(labels * confusion_classes + predicted, minlength=confusion_classes**2)
            sums["confusion"] = pairs.view(confusion_classes, confusion_classes)
        return sums

    def means(self, sums: dict[str, Any]) -> dict[str, float]:
        n = int(sums["n"])
        return {"loss": float(sums["loss_sum"]) / max(1, n), "accuracy": float(sums["correct"]) / max(1, n), "n": n}

    def record(self, train: dict[str, float], val: dict[str, float]) -> dict[str, float]:
        return {"train_acc": train["accuracy"], "val_acc": val["accuracy"]}

    def preflight(self, loss: float, classes: list[str], source: str | None = None) -> str:
        expected = math.log(len(classes))
        low, high = PREFLIGHT_BOUNDS
        if low * expected <= loss <= high * expected:
            return f"pre-flight: initial loss {loss:.3f} ≈ ln({len(classes)}) = {expected:.3f}, as expected"
        if source is not None and loss < low * expected:  # weights that learned these classes
            return (
                f"pre-flight: initial loss {loss:.3f}, below ln({len(classes)}) = {expected:.3f}: "
                f"the weights from {source} already tell these classes apart"
            )
        return (
            f"warning: pre-flight: initial loss {loss:.3f} is far from ln({len(classes)}) = "
            f"{expected:.3f}; check the labels, the input normalisation and the output layer's init"
        )

    @torch.inference_mode()
    def evaluate(self, forward: Forward, batches: Batches, classes: list[str], std: list[float]) -> Scored:
        """Accuracy, calibration and per-class scores; ``outputs``: softmax probabilities
        (N, C) as float64, and the NLL, both from the logits in float64. The batches' logits
        stay on the device until the end: one softmax, one transfer, no sync per batch."""
        logits, labels = [], []
        for images, batch_labels in batches:
            logits.append(forward(images).float())
            labels.append(batch_labels)
        if not logits:
            empty = np.zeros((0, len(classes)))
            return Scored(classification_metrics(empty, np.zeros(0, dtype=np.int64), classes, 0.0), empty)
        every, truth_t = torch.cat(logits).double(), torch.cat(labels)
        # x − logsumexp(x) in float64: a third of log_softmax's time on (10,000, 10) on a CPU.
        log_probs = every - every.logsumexp(1, keepdim=True)
        nll = float(F.nll_loss(log_probs, truth_t, reduction="sum")) / len(truth_t)
        # (N, C) laid out class by class: NumPy's per-sample sums and maxima over a few classes
        # run several times faster along contiguous rows of one class.
        probs = log_probs.exp().T.contiguous().cpu().numpy().T
        probs /= probs.sum(1, keepdims=True).clip(min=1e-300)  # exact sums for scikit-learn's checks
        truth = truth_t.cpu().numpy()
        return Scored(classification_metrics(probs, truth, classes, nll), probs)

    def figures(self, scored: Drawable) -> Figures:
        """Confusion matrices (counts, rows normalised), F1 per class, reliability, the most
        confidently wrong images, and ROC and precision–recall curves one class against the rest."""
        from dltool.figures import eval_plots
        from dltool.figures.confusion import confusion_figure

        probs, samples, classes, split = scored.outputs, scored.samples, scored.classes, scored.split
        assert probs is not None  # evaluate keeps the probabilities
        document = scored.document
        predicted, confidence = top_choice(probs)
        bins = reliability_bins(confidence, predicted == samples.labels, ECE_BINS)
        return [
            (
                "confusion",
                confusion_figure(document["confusion_matrix"], classes, normalised=False, split=split),
                "counts; rows are the true classes, columns the predicted ones",
            ),
            (
                "confusion_normalised",
                confusion_figure(document["confusion_matrix"], classes, normalised=True, split=split),
                "each row divided by its count: the diagonal is each class's recall",
            ),
            (
                "per_class_f1",
                eval_plots.per_class_f1_figure(document["per_class"], document["macro_f1"], split),
                "F1 of each class; the dashed line is the macro average",
            ),
            (
                "reliability",
                eval_plots.reliability_figure(bins, document["ece"], split),
                "accuracy against confidence in the ECE's bins; bars below the diagonal are overconfident",
            ),
            (
                "wrong",
                eval_plots.wrong_figure(samples, probs, classes, split),
                "the wrongly classified images the model was most sure of, with the probability it gave",
            ),
            *_curve_figures(scored),
        ]


def _curve_figures(scored: Drawable) -> Figures:
    """ROC and precision–recall curves, one class against the rest (documents written before
    eval scored them get the macro averages computed here)."""
    from dltool.figures import eval_plots

    probs, labels, classes, split = scored.outputs, scored.samples.labels, scored.classes, scored.split
    assert probs is not None
    document = scored.document
    if "roc_auc" not in document:
        document = classification_metrics(probs, labels, classes, nll=document.get("loss", float("nan")))
    aucs, aps = one_vs_rest_scores(probs, labels, len(classes))
    return [
        (
            "roc",
            eval_plots.roc_figure(probs, labels, classes, aucs, document["roc_auc"], split),
            "true against false positive rate as the threshold on each class's probability falls",
        ),
        (
            "precision_recall",
            eval_plots.precision_recall_figure(probs, labels, classes, aps, document["average_precision"], split),
            "precision against recall as the threshold on each class's probability falls",
        ),
    ]
