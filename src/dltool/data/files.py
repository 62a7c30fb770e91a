"""A split of an image folder kept as file paths: what the stream loader reads during training.

``FileSplit`` stands where an array ``Split`` would: it has the labels, ``take`` for the val
draw and the few-shot subset, ``relabelled``, and ``image``/``images``, which decode the
files asked for (a handful, for figures and model initialisation — whole passes go through
``dltool.data.stream.StreamLoader``, which decodes in worker processes). Each file goes
through the evaluation transform (``decode_image``), exactly as the memory loader's cache.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dltool.data.arrays import CHUNK_PIXELS, ImageArrays
from dltool.data.images import ImageDecodeError, decode_image

if TYPE_CHECKING:
    from dltool.data.folders import FolderIndex


@dataclass(frozen=True)
class FileSplit:
    """Files (relative to ``root``) and their int64 labels; every file decodes to
    ``image_shape`` (C, H, W) through the evaluation transform with ``crop_pct``."""

    root: str
    files: tuple[str, ...]
    labels: np.ndarray
    image_shape: tuple[int, int, int]
    crop_pct: float | None = 1.0

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: np.ndarray) -> FileSplit:
        files = tuple(self.files[i] for i in indices)
        return FileSplit(self.root, files, self.labels[indices], self.image_shape, self.crop_pct)

    def relabelled(self, labels: np.ndarray) -> FileSplit:
        """The same files with other labels."""
        return FileSplit(self.root, self.files, labels, self.image_shape, self.crop_pct)

    def path(self, index: int) -> str:
        return f"{self.root}/{self.files[index]}"

    def image(self, index: int) -> np.ndarray:
        """Sample ``index`` decoded, uint8 ``image_shape``; ``ImageDecodeError`` when it cannot be read."""
        channels, height, width = self.image_shape
        size = height if height == width else (height, width)
        return decode_image(self.path(index), channels=channels, size=size, crop_pct=self.crop_pct)

    @property
    def images(self) -> np.ndarray:
        """Every file decoded, (N, C, H, W): for small splits (``take`` a few first)."""
        if not len(self):
            return np.empty((0, *self.image_shape), np.uint8)
        return np.stack([self.image(i) for i in range(len(self))])

    def chunks(self, max_pixels: int | None = None) -> Iterator[np.ndarray]:
        """The decodable images in order, as arrays of at most ``max_pixels`` values (one
        image at least), decoded on threads a chunk at a time: memory for one chunk."""
        step = max(1, (max_pixels or CHUNK_PIXELS) // max(1, int(np.prod(self.image_shape))))
        for start in range(0, len(self), step):
            yield decode_rows(self, np.arange(start, min(len(self), start + step)))[0]


def file_arrays(index: FolderIndex, shape: tuple[int, int, int], crop_pct: float | None) -> ImageArrays:
    """The splits of a folder's ``index`` as ``FileSplit``s decoding to ``shape`` (splits
    without files left out)."""
    splits = {
        split: FileSplit(
            str(index.root),
            tuple(path for path, _ in rows),
            np.array([label for _, label in rows], np.int64),
            shape,
            crop_pct,
        )
        for split, rows in index.files.items()
        if rows
    }
    return ImageArrays(index.classes, splits)


def decode_rows(
    split: FileSplit, rows: np.ndarray, threads: int | None = None
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """The files of ``rows`` that decode, stacked (K, C, H, W) in row order, and (row, reason)
    of those that do not. ``threads`` > 1 decodes on threads (Pillow releases the GIL)."""
    numbers = [int(row) for row in rows]
    if threads == 1 or len(numbers) < 2:
        results = [_try_decode(split, row) for row in numbers]
    else:
        with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
            results = list(pool.map(lambda row: _try_decode(split, row), numbers))
    images = [image for image in results if isinstance(image, np.ndarray)]
    skipped = [(row, result) for row, result in zip(numbers, results, strict=True) if isinstance(result, str)]
    stacked = np.stack(images) if images else np.empty((0, *split.image_shape), np.uint8)
    return stacked, skipped


def _try_decode(split: FileSplit, row: int) -> np.ndarray | str:
    try:
        return split.image(row)
    except ImageDecodeError as error:
        return error.reason
