"""Deterministic, stratified splits.

Written with NumPy rather than scikit-learn's ``train_test_split``: importing scikit-learn
costs ~0.9 s, a sixth of a whole digits training run on a 2-core machine.
"""

from __future__ import annotations

import numpy as np

from dltool._text import counted
from dltool.config.schema import DataConfig
from dltool.data.arrays import AnySplit
from dltool.errors import ConfigError, DatasetError

# Share of train held out as the test split of a dataset without one (data.test_fraction).
DEFAULT_TEST_FRACTION = 0.1


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


def stratified_fold(labels: np.ndarray, folds: int, fold: int, seed: int) -> np.ndarray:
    """Sorted indices of fold ``fold`` of ``folds``: each class's samples, shuffled with
    ``seed``, dealt round the folds in turn (the deal of a class starts where the last one
    ended), so folds differ in size by one at most and each holds its share of every class.
    Masks (N, H, W) are dealt as one class."""
    rng = np.random.default_rng(seed)
    keys = np.zeros(len(labels), np.int64) if labels.ndim > 1 else labels
    held_out, start = [], 0
    for label in np.unique(keys):
        members = rng.permutation(np.flatnonzero(keys == label))
        held_out.append(members[(np.arange(len(members)) + start) % folds == fold])
        start += len(members)
    return np.sort(np.concatenate(held_out)) if held_out else np.empty(0, np.int64)


def draw_missing_splits(splits: dict[str, AnySplit], config: DataConfig, notes: list[str]) -> None:
    """Draw from train, stratified and seeded by ``data.split_seed``, the splits the dataset
    lacks: the test split first (``data.test_fraction``), so that neither training nor the
    val split's choices ever see it, then the val split."""
    if "test" not in splits and config.test_fraction:
        splits["train"], splits["test"] = _held_out(splits["train"], config, config.test_fraction, "test")
        drawn = "stratified" if splits["test"].labels.ndim == 1 else "at random"  # masks, points: no classes to keep
        notes.append(
            f"{config.name} has no test split: {counted(len(splits['test']), 'image')} (data.test_fraction "
            f"{config.test_fraction:g}, {drawn}) held out as the test split; nothing trains or validates on them"
        )
    if config.cv_folds:
        if "val" in splits:
            raise ConfigError(f"data.cv_folds: {config.name} has a val split of its own; folds are drawn from train")
        held_out = stratified_fold(splits["train"].labels, config.cv_folds, config.cv_fold, config.split_seed)
        rest = np.setdiff1d(np.arange(len(splits["train"])), held_out, assume_unique=True)
        splits["train"], splits["val"] = splits["train"].take(rest), splits["train"].take(held_out)
        notes.append(f"data.cv_folds {config.cv_folds}: fold {config.cv_fold + 1} ({len(held_out):,} images) is val")
    elif "val" not in splits:
        splits["train"], splits["val"] = _held_out(splits["train"], config, config.val_fraction, "val")


def _held_out(train: AnySplit, config: DataConfig, fraction: float, name: str) -> tuple[AnySplit, AnySplit]:
    rest, held_out = stratified_split(train, fraction, config.split_seed)
    if not len(held_out):
        raise DatasetError(
            f"{config.name}: its train split has too few images ({len(train)}) to draw a {name} split from"
        )
    return rest, held_out


def with_test_fraction(config: DataConfig) -> DataConfig:
    """``config`` with ``test_fraction`` resolved for a new run: unset, it is
    ``DEFAULT_TEST_FRACTION``. Left unset it reads as 0 — the val split doubling as the test
    split — which is how a run recorded before ``test_fraction`` existed was split."""
    if config.test_fraction is not None:
        return config
    return config.model_copy(update={"test_fraction": DEFAULT_TEST_FRACTION})
