"""Per-channel mean and std of a train split, for the input normalisation."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from dltool.data.arrays import Split
from dltool.data.files import FileSplit
from dltool.errors import DatasetError

Counting = Callable[[int, int], None]  # (done, total), for a progress display

# Training images a streamed dataset's mean/std are measured on (without data.mean/std).
STATS_SAMPLE = 1000


def train_stats(
    train: Split | FileSplit, notes: list[str], progress: Counting | None
) -> tuple[list[float], list[float]]:
    """Mean and std of the train split: all of it in memory; of a file split, the images of
    ``STATS_SAMPLE`` files spread evenly over it (the same every run, said in ``notes``). A
    channel of one value gets std 1 (``_divisible``)."""
    if isinstance(train, Split):
        return _divisible(*channel_stats(train, progress), notes)
    rows = np.unique(np.linspace(0, len(train) - 1, min(STATS_SAMPLE, len(train))).round().astype(np.int64))
    if len(rows) < len(train):
        notes.append(
            f"data.mean/std measured on {len(rows):,} of the {len(train):,} training images, spread evenly "
            "(set data.mean and data.std to fix them)"
        )
    return _divisible(*channel_stats(train.take(rows), progress), notes)


def _divisible(mean: list[float], std: list[float], notes: list[str]) -> tuple[list[float], list[float]]:
    """The measured std with 1 for a channel that holds one value in every training image:
    divided by its std of 0, every input of the model would be NaN (training failed at its
    first step, blaming the learning rate). Normalised, the channel is then 0 everywhere."""
    constant = [str(channel) for channel, value in enumerate(std) if value == 0]
    if constant:
        notes.append(
            f"data.std: channel {', '.join(constant)} holds one value in every training image (std 0); "
            "it is divided by 1 instead"
        )
    return mean, [value or 1.0 for value in std]


def channel_stats(
    images: Split | FileSplit | np.ndarray, progress: Counting | None = None
) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) std of uint8 images (N, C, H, W), in [0, 1] units.

    Computed exactly from each channel's histogram of byte values (integer sums), a chunk of
    images at a time (``Split.chunks``; a file split's decodable files): no float copy of the
    dataset, no pass that can lose precision, and memory for one chunk whatever the split's
    size. ``progress(done, total)`` is called after each chunk."""
    split = images if isinstance(images, Split | FileSplit) else Split(images, np.empty(len(images), np.int64))
    channels = split.image_shape[0]
    counts = np.zeros((channels, 256), dtype=np.int64)
    done = 0
    for chunk in split.chunks():
        for c in range(channels):
            counts[c] += np.bincount(chunk[:, c].ravel(), minlength=256)
        done += len(chunk)
        if progress is not None:
            progress(done, len(split))
    means, stds = [], []
    values = np.arange(256, dtype=object)
    for c in range(channels):
        histogram = counts[c].astype(object)
        n, total, squares = int(histogram.sum()), int((histogram * values).sum()), int((histogram * values**2).sum())
        if n == 0:
            raise DatasetError("cannot measure mean and std: the train split is empty")
        means.append(total / (n * 255))
        stds.append(math.sqrt((n * squares - total * total) / (n * 255) ** 2))
    return means, stds
