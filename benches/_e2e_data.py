"""The digits split the scripts of benches/end_to_end.py train on: dltool's own (a fixed 20%
held out as test, stratified, seed 0: ``dltool.data.digits``), rebuilt with NumPy so that the
scripts import neither dltool nor torch for it; pixels scaled as dltool scales them (0–255)
and standardised with the train split's mean and standard deviation."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

TEST_FRACTION, TEST_SEED = 0.2, 0  # dltool.data.digits


def held_out(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """``dltool.data.splits.stratified_indices`` for class labels: a seeded ``fraction`` of each class."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = min(len(members) - 1, max(1, round(fraction * len(members))))
        chosen.append(rng.permutation(members)[:count])
    return np.sort(np.concatenate(chosen))


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): float32 pixels of shape (N, 64) and int64 labels."""
    bunch = load_digits()
    labels = bunch.target.astype(np.int64)
    pixels = np.rint(bunch.images * (255 / 16)).reshape(len(labels), -1) / 255
    test = held_out(labels, TEST_FRACTION, TEST_SEED)
    train = np.setdiff1d(np.arange(len(labels)), test)
    mean, std = pixels[train].mean(), pixels[train].std()
    x = ((pixels - mean) / std).astype(np.float32)
    return x[train], labels[train], x[test], labels[test]
