"""Deterministic, stratified splits.

The test and val splits a dataset lacks are drawn from train in one of two ways
(``data.split_by``). ``name``: each file by a hash of its file name and ``data.split_seed``,
so adding or removing photos never moves another between train, val and test (a run's test
split stays unseen by it after its folder grew); each class's share is the fraction up to
chance. ``shuffle``: a seeded shuffle of each class, exact shares, drawn again whenever the
files change; datasets without file names (digits, CIFAR...) are always shuffled.

Written with NumPy rather than scikit-learn's ``train_test_split``: importing scikit-learn
costs ~0.9 s, a sixth of a whole digits training run on a 2-core machine.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from dltool._text import counted, first_few
from dltool.config.schema import DataConfig
from dltool.data.arrays import AnySplit, SourceReport, Split
from dltool.data.files import FileSplit
from dltool.errors import ConfigError, DatasetError

# Share of train held out as the test split of a dataset without one (data.test_fraction).
DEFAULT_TEST_FRACTION = 0.1


@dataclass(frozen=True)
class Draw:
    """How a split is drawn: the shares, the seed, and ``by_name`` (``data.split_by`` name)."""

    val_fraction: float = 0.1
    test_fraction: float = 0.0
    seed: int = 0
    by_name: bool = False

    @classmethod
    def of(cls, config: DataConfig) -> Draw:
        by_name = config.split_by == "name"
        return cls(config.val_fraction, config.test_fraction or 0.0, config.split_seed, by_name)


def class_groups(labels: np.ndarray) -> Iterator[np.ndarray]:
    """The indices of each class's samples; masks (N, H, W) and points, which give a sample
    no one class, as one group."""
    if labels.ndim > 1:
        yield np.arange(len(labels))
        return
    for label in np.unique(labels):
        yield np.flatnonzero(labels == label)


def stratified_indices(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a held-out ``fraction`` of each class (one at least, when a class has
    two or more samples), shuffled with ``seed``."""
    rng = np.random.default_rng(seed)
    held_out = []
    for members in class_groups(labels):
        count = min(len(members) - 1, max(1, round(fraction * len(members))))
        held_out.append(rng.permutation(members)[:count])
    return np.sort(np.concatenate(held_out)) if held_out else np.empty(0, np.int64)


def name_draws(names: Sequence[str], seed: int, salt: str) -> np.ndarray:
    """A number in [0, 1) per file, fixed by its file name (not its folder: a photo moved to
    another class folder keeps its split), ``seed`` and ``salt`` (the split drawn)."""
    # A name the file system gave as bytes that are not UTF-8 (a Latin-1 "café.jpg" off an old
    # share) hashes as those bytes: Python holds them as surrogates, which strict UTF-8 refuses.
    keys = (f"{seed}/{salt}/{PurePosixPath(name).name}".encode("utf-8", "surrogateescape") for name in names)
    bits = (int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 11 for key in keys)
    return np.fromiter(bits, np.float64, len(names)) / float(1 << 53)


def named_indices(labels: np.ndarray, names: Sequence[str], fraction: float, seed: int, salt: str) -> np.ndarray:
    """Sorted indices of the samples whose ``name_draws`` fall under ``fraction``, as many of
    each class as ``share_bounds`` allow (the lowest draws)."""
    draws = name_draws(names, seed, salt)
    held = draws < fraction
    for members in class_groups(labels):
        ranked = members[np.argsort(draws[members], kind="stable")]
        count = np.clip(held[members].sum(), *share_bounds(len(members), fraction))
        held[members] = False
        held[ranked[:count]] = True
    return np.flatnonzero(held)


def share_bounds(members: int, fraction: float) -> tuple[int, int]:
    """How many of a class of ``members`` a draw by name holds out: half to one and a half
    times its share, one at least and all but one at most (none of a class of one). Chance
    alone gave a class of 10 at 0.2 five held out; only in small classes do these bounds,
    which depend on the other files, ever decide."""
    expected = fraction * members
    return min(members - 1, max(1, math.floor(expected / 2))), min(members - 1, math.ceil(expected * 3 / 2))


def stratified_split(
    split: AnySplit, fraction: float, seed: int, names: Sequence[str] | None = None, salt: str = ""
) -> tuple[AnySplit, AnySplit]:
    """``split`` less a held-out ``fraction`` of each class, and that fraction: by the
    samples' ``names`` (``named_indices``, ``salt`` the split drawn) when given, else shuffled."""
    if names is None:
        held_out = stratified_indices(split.labels, fraction, seed)
    else:
        held_out = named_indices(split.labels, names, fraction, seed, salt)
    rest = np.setdiff1d(np.arange(len(split)), held_out, assume_unique=True)
    return split.take(rest), split.take(held_out)


def stratified_fold(labels: np.ndarray, folds: int, fold: int, seed: int) -> np.ndarray:
    """Sorted indices of fold ``fold`` of ``folds``: each class's samples, shuffled with
    ``seed``, dealt round the folds in turn (the deal of a class starts where the last one
    ended), so folds differ in size by one at most and each holds its share of every class.
    Masks (N, H, W) are dealt as one class."""
    rng = np.random.default_rng(seed)
    held_out, start = [], 0
    for group in class_groups(labels):
        members = rng.permutation(group)
        held_out.append(members[(np.arange(len(members)) + start) % folds == fold])
        start += len(members)
    return np.sort(np.concatenate(held_out)) if held_out else np.empty(0, np.int64)


def draw_missing_splits(
    splits: dict[str, AnySplit], config: DataConfig, notes: list[str], source: SourceReport | None = None
) -> None:
    """Draw from train, stratified and seeded by ``data.split_seed``, the splits the dataset
    lacks: the test split first (``data.test_fraction``), so that neither training nor the
    val split's choices ever see it, then the val split. ``source``: where an image folder's
    files are named (``data.split_by`` name)."""
    if "test" not in splits and config.test_fraction:
        splits["train"], splits["test"] = _held_out(splits["train"], config, "test", source)
        notes.append(
            f"{config.name} has no test split: {counted(len(splits['test']), 'image')} (data.test_fraction "
            f"{config.test_fraction:g}, {_how(splits['test'], config, source)}) held out as the test split; "
            "nothing trains or validates on them"
        )
    if config.cv_folds:
        if "val" in splits:
            raise ConfigError(f"data.cv_folds: {config.name} has a val split of its own; folds are drawn from train")
        held_out = stratified_fold(splits["train"].labels, config.cv_folds, config.cv_fold, config.split_seed)
        rest = np.setdiff1d(np.arange(len(splits["train"])), held_out, assume_unique=True)
        splits["train"], splits["val"] = splits["train"].take(rest), splits["train"].take(held_out)
        notes.append(f"data.cv_folds {config.cv_folds}: fold {config.cv_fold + 1} ({len(held_out):,} images) is val")
    elif "val" not in splits:
        splits["train"], splits["val"] = _held_out(splits["train"], config, "val", source)


def lacking_classes(splits: Mapping[str, AnySplit], classes: list[str]) -> list[str]:
    """A note for each of the val and test splits that holds no image of a class training
    sees (a class of one image stays in train): its scores there are empty, unsaid before."""
    train = splits["train"].labels
    if train.ndim != 1:
        return []
    notes = []
    for name in (name for name in ("val", "test") if name in splits):
        lacking = np.setdiff1d(np.unique(train), splits[name].labels)
        if len(lacking):
            named = first_few([classes[label] for label in lacking])
            notes.append(f"the {name} split holds no image of {named} (too few images?): nothing scores them there")
    return notes


def _how(drawn: AnySplit, config: DataConfig, source: SourceReport | None) -> str:
    """How a split was drawn, for its note: masks and points have no classes to keep."""
    by_name = config.split_by == "name" and sample_names(drawn, source) is not None
    kept = "stratified" if drawn.labels.ndim == 1 else ("" if by_name else "at random")
    return ", ".join(filter(None, ["by file name" if by_name else "", kept]))


def sample_names(split: object, source: SourceReport | None) -> list[str] | None:
    """Each sample's file (a train split or one drawn from it); None for a dataset without."""
    if isinstance(split, FileSplit):
        return list(split.files)
    if source is None or not isinstance(split, Split) or "train" not in source.files:
        return None
    return [source.files["train"][row] for row in split.row_index]


def _held_out(train: AnySplit, config: DataConfig, name: str, source: SourceReport | None) -> tuple[AnySplit, AnySplit]:
    fraction = config.test_fraction if name == "test" else config.val_fraction
    names = sample_names(train, source) if config.split_by == "name" else None
    rest, held_out = stratified_split(train, fraction or 0.0, config.split_seed, names, salt=name)
    if not len(held_out):
        raise DatasetError(
            f"{config.name}: its train split has too few images ({len(train)}) to draw a {name} split from"
        )
    return rest, held_out


def for_new_run(config: DataConfig) -> DataConfig:
    """``config`` with the split settings a new run records resolved: unset, ``test_fraction``
    is ``DEFAULT_TEST_FRACTION`` and ``split_by`` is name. Left unset they read as 0 (the val
    split doubling as the test split) and shuffle: how a run recorded before they existed was split."""
    defaults = {"test_fraction": DEFAULT_TEST_FRACTION, "split_by": "name"}
    return config.model_copy(update={key: value for key, value in defaults.items() if getattr(config, key) is None})
