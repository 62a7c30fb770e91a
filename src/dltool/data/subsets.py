"""Class subsets and few-shot training splits (``data.classes``, ``data.train_per_class``).

Applied to the loaded arrays before anything else, so every split, ``classes.json`` and
the model's head see only the kept classes, numbered in the order ``data.classes`` gives.
"""

from __future__ import annotations

import numpy as np

from dltool._text import composed
from dltool.data.arrays import AnySplit, ImageArrays
from dltool.errors import ConfigError, did_you_mean

# Seeds the few-shot draw apart from the val split drawn with the same data.split_seed.
FEW_SHOT_STREAM = 1


def select_classes(arrays: ImageArrays, names: list[str]) -> ImageArrays:
    """``arrays`` with only the classes ``names``, relabelled 0..len(names)-1 in that order."""
    keys = [composed(name) for name in arrays.classes]  # "Bären" typed, and as a Mac's folder spells it
    unknown = [name for name in names if composed(name) not in keys]
    if unknown:
        raise ConfigError(
            f"data.classes: {', '.join(map(repr, unknown))} not a class of the dataset "
            f"(its classes: {', '.join(arrays.classes)}){did_you_mean(unknown[0], arrays.classes)}"
        )
    if len({composed(name) for name in names}) != len(names):
        raise ConfigError(f"data.classes: a class is named twice in {names}")
    new_label = np.full(len(arrays.classes), -1, dtype=np.int64)
    new_label[[keys.index(composed(name)) for name in names]] = np.arange(len(names))
    splits = {}
    for split_name, split in arrays.splits.items():
        labels = new_label[split.labels]
        kept = np.flatnonzero(labels >= 0)
        splits[split_name] = split.relabelled(labels).take(kept)  # indexes the images, no copy
    return ImageArrays(list(names), splits, arrays.source)


def per_class(split: AnySplit, count: int, seed: int) -> AnySplit:
    """``count`` samples of each class of ``split`` (all of a class that has fewer), drawn
    with ``seed`` and kept in their original order."""
    rng = np.random.default_rng([seed, FEW_SHOT_STREAM])
    kept = [rng.permutation(np.flatnonzero(split.labels == label))[:count] for label in np.unique(split.labels)]
    return split.take(np.sort(np.concatenate(kept)))
