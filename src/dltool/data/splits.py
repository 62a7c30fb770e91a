"""Deterministic, stratified splits.

Written with NumPy rather than scikit-learn's ``train_test_split``: importing scikit-learn
costs ~0.9 s, a sixth of a whole digits training run on a 2-core machine.
"""

from __future__ import annotations

import numpy as np

from dltool.data.arrays import AnySplit


def stratified_indices(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a held-out ``fraction`` of each class (one at least, when a class has
    two or more samples); the same labels, fraction and seed give the same indices. Masks
    (N, H, W) give a sample no one class: they are drawn at random, a ``fraction`` of all."""
    rng = np.random.default_rng(seed)
    if labels.ndim > 1:
        count = min(len(labels) - 1, max(1, round(fraction * len(labels))))
        return np.sort(rng.permutation(len(labels))[:count])
    held_out = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = min(len(members) - 1, max(1, round(fraction * len(members))))
        held_out.append(rng.permutation(members)[:count])
    return np.sort(np.concatenate(held_out)) if held_out else np.empty(0, np.int64)


def stratified_split(split: AnySplit, fraction: float, seed: int) -> tuple[AnySplit, AnySplit]:
    """``split`` less a stratified ``fraction``, and that fraction."""
    held_out = stratified_indices(split.labels, fraction, seed)
    rest = np.setdiff1d(np.arange(len(split)), held_out, assume_unique=True)
    return split.take(rest), split.take(held_out)
