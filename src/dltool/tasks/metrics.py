"""The numbers in ``eval-<split>.json``, as scikit-learn defines them, computed with NumPy from
one confusion matrix (scikit-learn's functions check their inputs on every call: most of an
eval's scoring time); checked in tests against scikit-learn and independent computations."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

ECE_BINS = 15


def classification_metrics(probs: np.ndarray, labels: np.ndarray, classes: list[str], nll: float) -> dict[str, Any]:
    """Accuracy, calibration and per-class scores of predicted probabilities (N, C).

    ``nll`` is the mean negative log-likelihood, computed from the logits (exact where the
    softmax underflows).
    """
    n, k = len(labels), len(classes)
    predicted, confidence = top_choice(probs)
    confusion = np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)
    precision, recall, f1, support = per_class_scores(confusion)
    document: dict[str, Any] = {
        "n": int(n),
        "loss": nll,
        "accuracy": float(np.trace(confusion) / n) if n else math.nan,
        "balanced_accuracy": float(np.mean(recall[support > 0])) if n else math.nan,
    }
    if k > 5:
        document["top5_accuracy"] = top_k_accuracy(probs, labels, 5) if n else math.nan
    document["macro_f1"] = float(np.mean(f1))
    document["weighted_f1"] = float(np.average(f1, weights=support)) if n else math.nan
    auc, ap = one_vs_rest_scores(probs, labels, k)
    document["roc_auc"] = _mean_defined(auc)
    document["average_precision"] = _mean_defined(ap)
    document["per_class"] = {
        name: {
            "precision": float(p),
            "recall": float(r),
            "f1": float(f),
            "support": int(s),
            "roc_auc": a,
            "average_precision": q,
        }
        for name, p, r, f, s, a, q in zip(classes, precision, recall, f1, support, auc, ap)
    }
    document["confusion_matrix"] = confusion.tolist()
    document["ece"] = expected_calibration_error(confidence, predicted == labels)
    document["brier"] = brier_score(probs, labels) if n else math.nan
    return document


def brier_score(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean over samples of the squared distance from the one-hot label, expanded (Σp² − 2p_y + 1)
    so that no (N, C) one-hot array is built: a third of the time at 10,000 × 10."""
    own = probs[np.arange(len(labels)), labels]
    return float(np.mean(np.einsum("ij,ij->i", probs, probs) - 2 * own + 1))


def per_class_scores(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 and support per class of a confusion matrix (rows true), 0 where
    a score divides by zero (scikit-learn's ``zero_division=0``)."""
    hits, support, predicted = np.diag(confusion), confusion.sum(1), confusion.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, hits / predicted, 0.0)
        recall = np.where(support > 0, hits / support, 0.0)
        f1 = np.where(support + predicted > 0, 2 * hits / (support + predicted), 0.0)
    return precision, recall, f1, support


def top_choice(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's predicted class and its probability: one arg-max (``max(1)`` would cost
    as much again: 0.3 ms at 10,000 × 10)."""
    predicted = probs.argmax(1)
    return predicted, probs[np.arange(len(probs)), predicted]


def top_k_accuracy(probs: np.ndarray, labels: np.ndarray, k: int) -> float:
    """The share of samples whose label is among their ``k`` highest probabilities (of tied
    ones, the later class first, as scikit-learn's ``top_k_accuracy_score`` ranks them):
    fewer than ``k`` classes rank above the label — higher, or tied and later. No sort."""
    own = probs[np.arange(len(labels)), labels][:, None]
    later = (np.arange(probs.shape[1])[:, None] > labels).T  # laid out class by class, as eval's probs
    above = np.count_nonzero((probs > own) | ((probs == own) & later), axis=1)
    return float(np.mean(above < k))


def one_vs_rest_scores(probs: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple[list[float], list[float]]:
    """Per class, its probability column ranking it against all the others: ROC AUC and
    average precision, as scikit-learn defines them (computed here with NumPy: scikit-learn's
    functions check their inputs on each of the 2 × classes calls, most of an eval's scoring
    time). NaN where the split has no positive or no negative of the class, for which neither
    is defined."""
    auc, ap = [], []
    columns = np.ascontiguousarray(probs.T)  # NumPy sorts a contiguous row several times faster
    # (free for an eval's probabilities, which are laid out class by class)
    for index in range(n_classes):
        positive = labels == index
        if positive.all() or not positive.any():
            auc.append(math.nan)
            ap.append(math.nan)
            continue
        scores = ranked_scores(columns[index], positive)
        auc.append(scores[0])
        ap.append(scores[1])
    return auc, ap


def ranked_scores(scores: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """ROC AUC and average precision of ``scores`` for the ``positive`` rows, as scikit-learn
    defines them, from where each positive's score falls among all the scores (sorted) and
    among the positives' (sorted): no arg-sort (3x the time of a sort here), no order
    within a tie.

    ROC AUC: the chance that a random positive outscores a random negative, ties counting
    half — the positives' rank sum, a tie sharing its mean rank. Average precision
    (``average_precision_score``): the precision at each distinct score from the highest
    down, weighted by the recall it adds — the mean over the positives of the precision at
    their score: the positives scoring at least as high, over all the scores that do."""
    everyone, hits = np.sort(scores), np.sort(scores[positive])
    n, n_pos = len(everyone), len(hits)
    below = np.searchsorted(everyone, hits, "left")  # scores under each positive's: its tie starts there
    tied_or_below = np.searchsorted(everyone, hits, "right")
    rank_sum = float(np.sum(below + tied_or_below + 1)) / 2  # a tie's mean 1-based rank, per positive
    auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * (n - n_pos))
    positives_below = np.searchsorted(hits, hits, "left")
    return float(auc), float(np.mean((n_pos - positives_below) / (n - below)))


def _mean_defined(values: list[float]) -> float:
    """The macro average over the classes where a score is defined (NaN when none is)."""
    defined = [v for v in values if not math.isnan(v)]
    return float(np.mean(defined)) if defined else math.nan


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Guo et al. 2017: confidence (each sample's top probability) split into equal-width bins
    (i/M, (i+1)/M]; the sample-weighted mean of |accuracy − mean confidence| over the bins."""
    if len(correct) == 0:
        return math.nan
    count, accuracy, mean_confidence = reliability_bins(confidence, correct, bins)
    filled = count > 0
    return float(np.sum(count[filled] * np.abs(accuracy[filled] - mean_confidence[filled])) / len(correct))


def reliability_bins(
    confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per confidence bin (i/M, (i+1)/M]: sample count, accuracy and mean confidence (NaN
    in empty bins) — the reliability diagram, and the terms of the ECE. ``confidence``: each
    sample's top probability; ``correct``: whether its class was the label (``top_choice``)."""
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(which, weights=correct.astype(float), minlength=bins) / count
        mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / count
    return count, accuracy, mean_confidence


def reconstruction_metrics(squared_error_sum: float, pixels: int, loss: float, n: int) -> dict[str, Any]:
    """MSE in [0, 1] pixel units and its PSNR (dB, peak 1); ``loss`` is the training loss's
    per-pixel MSE in normalised units."""
    mse = squared_error_sum / max(1, pixels)
    psnr = 10 * math.log10(1 / mse) if mse > 0 else math.inf
    return {"n": n, "loss": loss, "mse": mse, "psnr": psnr}
