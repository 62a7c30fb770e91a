"""Image datasets as arrays: the common currency between loaders, splits and the engine."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    """One split: uint8 images (N, C, H, W) and int64 labels (N,)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: np.ndarray) -> Split:
        return Split(self.images[indices], self.labels[indices])


@dataclass(frozen=True)
class SourceReport:
    """What decoding a dataset's files found (image folders; None for array datasets).

    ``files``: per split, the path of each row, relative to the dataset folder;
    ``skipped``: (relative path, reason) of every file that could not be decoded;
    ``sizes`` ("WxH") and ``modes`` (Pillow's): counts over the decoded files, as stored;
    ``notes``: what the loader decided for the user (a resize, a split it stood in for).
    """

    files: dict[str, list[str]]
    skipped: list[tuple[str, str]]
    sizes: dict[str, int]
    modes: dict[str, int]
    notes: list[str]


@dataclass(frozen=True)
class ImageArrays:
    """A dataset's splits by name ('train', optionally 'val', 'test') and its class names."""

    classes: list[str]
    splits: dict[str, Split]
    source: SourceReport | None = None
