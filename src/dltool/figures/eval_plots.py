"""Figures of a model's scores on a split: confusion matrices, per-class F1, reliability,
the most confidently wrong images, and reconstructions next to their inputs.

Each function takes plain arrays and lists (from an eval document and its ``Evaluation``)
and returns a ``Figure``; nothing here needs torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from matplotlib.figure import Figure

from dltool.figures.canvas import grid_shape, message_figure, new_figure, show_image
from dltool.figures.classes import LABELS_UP_TO, class_ticks, clip_name

WRONG_SHOWN = 24  # most confidently wrong images in the grid
WRONG_COLUMNS = 6
RELIABILITY_SIZE = (5.0, 5.6)
TILE = 1.5  # inches per image in grids


def per_class_size(n_classes: int) -> tuple[float, float]:
    return 6.4, min(30.0, max(2.6, 1.1 + 0.26 * n_classes))


def per_class_f1_figure(per_class: dict[str, dict[str, float]], macro_f1: float, split: str = "test") -> Figure:
    """A horizontal bar per class (``per_class`` order, first at the top), macro F1 dashed."""
    scores = [per_class[name]["f1"] for name in per_class]
    title = f"F1 per class ({split}); dashed: macro F1 {macro_f1:.3f}"
    return per_class_bars(list(per_class), scores, [f"{score:.3f}" for score in scores], macro_f1, "F1", title)


def per_class_bars(
    names: list[str], scores: list[float], labels: list[str], mean: float, score_name: str, title: str
) -> Figure:
    """A horizontal bar per class, first at the top, labelled where there are few classes,
    with the mean dashed: the per-class score figures of every task."""
    figure = new_figure(*per_class_size(len(names)))
    ax = figure.add_subplot()
    positions = np.arange(len(names))
    ax.barh(positions, scores, color="C0", height=0.7)
    ax.axvline(mean, color="C3", linestyle="--", linewidth=1)
    if len(names) <= LABELS_UP_TO:
        for y, score, label in zip(positions, scores, labels):
            ax.text(min(score, 1.0) + 0.01, float(y), label, va="center", fontsize=7)
    ax.set_yticks(*class_ticks(names), fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.1)
    ax.set_xlabel(score_name)
    ax.set_title(title)
    return figure


def reliability_figure(bins: tuple[np.ndarray, np.ndarray, np.ndarray], ece: float, split: str = "test") -> Figure:
    """Accuracy against confidence in the ECE's equal-width bins (``bins``: each bin's count,
    accuracy and mean confidence) with the gap to the diagonal, and the counts below it."""
    count, accuracy, confidence = bins
    edges = np.linspace(0, 1, len(count) + 1)
    centres, width = (edges[:-1] + edges[1:]) / 2, 1 / len(count)
    filled = count > 0
    figure = new_figure(*RELIABILITY_SIZE)
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.bar(
        centres[filled], accuracy[filled], width=width, color="C0", edgecolor="black", linewidth=0.5, label="accuracy"
    )
    low = np.minimum(accuracy[filled], confidence[filled])
    gap = np.abs(confidence[filled] - accuracy[filled])
    top.bar(
        centres[filled],
        gap,
        bottom=low,
        width=width,
        facecolor="none",
        edgecolor="C3",
        linewidth=0.8,
        hatch="///",
        label="gap to mean confidence",
    )
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(f"Reliability ({split}): ECE {ece:.4f}, {len(count)} bins")
    top.legend(loc="upper left", fontsize=7)
    bottom.bar(centres, count, width=width, color="grey", edgecolor="black", linewidth=0.5)
    bottom.set_xlabel("confidence (top-class probability)")
    bottom.set_ylabel("samples")
    return figure


def wrong_size(shown: int) -> tuple[float, float]:
    rows, columns = grid_shape(max(1, shown), WRONG_COLUMNS)
    # At least as wide as three tiles: the title ("... (test): 1 of 1 wrong") needs ~3.3 in.
    return max(columns, 3) * TILE, rows * (TILE + 0.3) + 0.4


def most_confidently_wrong(probs: np.ndarray, labels: np.ndarray, limit: int = WRONG_SHOWN) -> np.ndarray:
    """Indices of wrongly classified samples, most confident first (ties: lower index first)."""
    predicted = probs.argmax(1)
    wrong = np.flatnonzero(predicted != labels)
    order = np.argsort(-probs[wrong, predicted[wrong]], kind="stable")
    return wrong[order][:limit]


def wrong_figure(samples: Any, probs: np.ndarray, classes: list[str], split: str = "test") -> Figure:
    """The most confidently wrong images of ``split``, each titled with its true and
    predicted class and the predicted probability (only those images are read)."""
    labels = samples.labels
    indices = most_confidently_wrong(probs, labels)
    if len(indices) == 0:
        return message_figure(f"Every {split} image is classified correctly: nothing to show.")
    figure = new_figure(*wrong_size(len(indices)))
    rows, columns = grid_shape(len(indices), WRONG_COLUMNS)
    axes = figure.subplots(rows, columns, squeeze=False)
    predicted = probs.argmax(1)
    for ax, index in zip(axes.flat, indices):
        p = predicted[index]
        show_image(
            ax,
            samples.image(index),
            f"true {clip_name(classes[labels[index]])}\npred {clip_name(classes[p])} ({probs[index, p]:.2f})",
            colour="C3",
        )
    for ax in axes.flat[len(indices) :]:
        ax.set_axis_off()
    wrong = int((predicted != labels).sum())
    figure.suptitle(f"Most confidently wrong ({split}): {len(indices)} of {wrong} wrong", fontsize=10)
    return figure


def reconstructions_size(shown: int) -> tuple[float, float]:
    return max(shown, 1) * 1.2 + 0.6, 2 * 1.2 + 0.6


def reconstructions_figure(inputs: np.ndarray, outputs: np.ndarray, document: dict, split: str = "test") -> Figure:
    """Inputs (top row) above the model's reconstructions (bottom row), uint8 (N, C, H, W)."""
    figure = new_figure(*reconstructions_size(len(inputs)))
    axes = figure.subplots(2, len(inputs), squeeze=False)
    for column, (image, output) in enumerate(zip(inputs, outputs)):
        show_image(axes[0, column], image)
        show_image(axes[1, column], output)
    axes[0, 0].text(-0.1, 0.5, "input", transform=axes[0, 0].transAxes, rotation=90, ha="right", va="center")
    axes[1, 0].text(-0.1, 0.5, "output", transform=axes[1, 0].transAxes, rotation=90, ha="right", va="center")
    psnr = document.get("psnr")
    detail = f": MSE {document['mse']:.4g}, PSNR {psnr:.2f} dB" if "mse" in document and psnr is not None else ""
    figure.suptitle(f"Reconstructions ({split}){detail}", fontsize=10)
    return figure


CURVE_SIZE = (6.0, 5.0)
# (is-positive, scores) -> the curve's (x, y)
Curve = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
LEGEND_UP_TO = 12  # classes named in a curve plot's legend; beyond, thin unnamed lines


def roc_figure(
    probs: np.ndarray, labels: np.ndarray, classes: list[str], aucs: list[float], roc_auc: float, split: str = "test"
) -> Figure:
    """One-vs-rest ROC curve of each class (scikit-learn's; ``aucs``: each class's AUC, NaN
    where it has no curve), the chance diagonal dashed."""
    from sklearn.metrics import roc_curve

    def curve(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fpr, tpr, _ = roc_curve(positive, scores)
        return fpr, tpr

    figure = _class_curves(probs, labels, classes, curve, aucs)
    ax = figure.axes[0]
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC, one class vs the rest ({split}): macro AUC {roc_auc:.3f}")
    return figure


def precision_recall_figure(
    probs: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    aps: list[float],
    average_precision: float,
    split: str = "test",
) -> Figure:
    """One-vs-rest precision–recall curve of each class (scikit-learn's; ``aps``: each
    class's average precision, NaN where it has no curve)."""
    from sklearn.metrics import precision_recall_curve

    def curve(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        precision, recall, _ = precision_recall_curve(positive, scores)
        return recall, precision

    figure = _class_curves(probs, labels, classes, curve, aps, legend="lower left")
    ax = figure.axes[0]
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"Precision–recall, one class vs the rest ({split}): macro AP {average_precision:.3f}")
    return figure


def _class_curves(
    probs: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    curve: Curve,
    scores: list[float],
    legend: Literal["lower right", "lower left"] = "lower right",
) -> Figure:
    """A line per class that has a score (positives and negatives in ``labels``); named
    (with its score) in the legend when there are few classes."""
    figure = new_figure(*CURVE_SIZE)
    ax = figure.add_subplot()
    named = len(classes) <= LEGEND_UP_TO
    for index, name in enumerate(classes):
        if np.isnan(scores[index]):
            continue  # the split lacks this class (or has nothing else): no curve
        x, y = curve(labels == index, probs[:, index])
        label = f"{clip_name(name)} ({scores[index]:.3f})" if named else None
        ax.plot(x, y, linewidth=1.2 if named else 0.6, alpha=1.0 if named else 0.5, label=label)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    if named:
        ax.legend(loc=legend, fontsize=7)
    return figure
