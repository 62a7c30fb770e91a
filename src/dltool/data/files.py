"""A split of an image folder kept as file paths: what the stream loader reads during training.

``FileSplit`` stands where an array ``Split`` would: it has the labels, ``take`` for the val
draw and the few-shot subset, ``relabelled``, and ``image``/``images``, which decode the
files asked for (a handful, for figures and model initialisation — whole passes go through
``dltool.data.stream.StreamLoader``, which decodes in worker processes). Each file goes
through the evaluation transform (``decode_image``), exactly as the memory loader's cache.

A segmentation folder's split has ``masks`` too (``MaskFiles``): ``pair`` decodes an image
and its mask as ``dltool.data.mask_decode`` fills the memory loader's arrays (the image
decoded whole and stretched, the mask by nearest neighbour). Its ``labels`` are an empty
(N, 0, 0) array: the shape says the targets are masks (``target_kind``), which are read from
the files with their images, never held.

A keypoint or regression folder's split holds its targets in ``labels`` as the memory
loader's arrays do (``dltool.data.table_decode``), and its images go through the same
transform (decoded whole, then fitted); a keypoint split keeps each point in pixels of its
stored image too (``stored_points``), for a random-resized crop cut from the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dltool.data.arrays import CHUNK_PIXELS, ImageArrays
from dltool.data.images import ImageDecodeError, decode_image
from dltool.data.mask_decode import fit_pair, read_labels, read_pair
from dltool.tasks.pixels import IGNORE

if TYPE_CHECKING:
    from dltool.data.folders import FolderIndex
    from dltool.data.masks import MaskIndex

_IDENTITY = np.arange(256, dtype=np.int32)  # raw mask value → class index: a folder's own


@dataclass(frozen=True)
class MaskFiles:
    """The mask file of each image of a ``FileSplit`` (relative to its root, in row order).

    ``classes``: the dataset's class count (a mask label from it up to 254 is no class);
    ``renumber``: each class index's index in a model's class order (``IGNORE`` kept), for
    ``dltool eval`` on a folder whose classes come in another order; None: as they are."""

    files: tuple[str, ...]
    classes: int
    renumber: tuple[int, ...] | None = None

    def take(self, indices: np.ndarray) -> MaskFiles:
        return replace(self, files=tuple(self.files[i] for i in indices))


@dataclass(frozen=True)
class FileSplit:
    """Files (relative to ``root``) and their labels (int64 class indices, or float targets
    of a table); every file decodes to ``image_shape`` (C, H, W) through the evaluation
    transform with ``crop_pct``. ``stored_points``: a keypoint split's (N, K, 2) points in
    pixels of each image as stored (NaN: missing)."""

    root: str
    files: tuple[str, ...]
    labels: np.ndarray
    image_shape: tuple[int, int, int]
    crop_pct: float | None = 1.0
    masks: MaskFiles | None = None
    stored_points: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: np.ndarray) -> FileSplit:
        files = tuple(self.files[i] for i in indices)
        masks = None if self.masks is None else self.masks.take(indices)
        points = None if self.stored_points is None else self.stored_points[indices]
        return replace(self, files=files, labels=self.labels[indices], masks=masks, stored_points=points)

    def relabelled(self, labels: np.ndarray) -> FileSplit:
        """The same files with other labels."""
        return replace(self, labels=labels)

    def renumbered(self, mapping: np.ndarray) -> FileSplit:
        """The masks' class indices through ``mapping`` (uint8, 256 long: class → new index)."""
        assert self.masks is not None
        renumber = mapping if self.masks.renumber is None else mapping[np.array(self.masks.renumber)]
        return replace(self, masks=replace(self.masks, renumber=tuple(int(k) for k in renumber)))

    def path(self, index: int) -> str:
        return f"{self.root}/{self.files[index]}"

    def image(self, index: int) -> np.ndarray:
        """Sample ``index`` decoded, uint8 ``image_shape``; ``ImageDecodeError`` when it cannot be read."""
        channels, height, width = self.image_shape
        size = height if height == width else (height, width)
        return decode_image(self.path(index), channels=channels, size=size, crop_pct=self.crop_pct)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image ``index`` and its mask through the evaluation transform: uint8 ``image_shape``
        and (H, W) class indices; ``ImageDecodeError`` when either cannot be used."""
        assert self.masks is not None
        files, size = (self.files[index], self.masks.files[index]), self.image_shape[1:]
        image, mask, _, _ = read_pair(Path(self.root), files, _IDENTITY, size)
        return fit_pair(image, self._classes_of(mask, index), size, self.image_shape[0])

    def mask(self, index: int, size: tuple[int, int]) -> np.ndarray:
        """The class indices of image ``index``'s mask (checked, renumbered), whose image is
        ``size`` (height, width) as stored."""
        assert self.masks is not None
        files = (self.files[index], self.masks.files[index])
        return self._classes_of(read_labels(Path(self.root), files, _IDENTITY, size), index)

    def _classes_of(self, mask: np.ndarray, index: int) -> np.ndarray:
        assert self.masks is not None
        outside = mask[(mask >= self.masks.classes) & (mask != IGNORE)]
        if len(outside):
            reason = f"mask label {int(outside.min())} is not a class (0..{self.masks.classes - 1}, {IGNORE} ignored)"
            raise ImageDecodeError(self.path(index), reason)
        return mask if self.masks.renumber is None else np.array(self.masks.renumber, np.uint8)[mask]

    @property
    def targets(self) -> np.ndarray:
        """The labels; for a segmentation split, every mask decoded (for a handful of samples)."""
        if self.masks is None:
            return self.labels
        height, width = self.image_shape[1:]
        return (
            np.stack([self.pair(i)[1] for i in range(len(self))])
            if len(self)
            else np.empty((0, height, width), np.uint8)
        )

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


def mask_file_arrays(index: MaskIndex, shape: tuple[int, int, int], classes: list[str]) -> ImageArrays:
    """The splits of segmentation ``index`` as ``FileSplit``s with their masks, decoding to
    ``shape`` (splits without pairs left out)."""
    splits = {
        split: FileSplit(
            str(index.root),
            tuple(image for image, _ in pairs),
            np.empty((len(pairs), 0, 0), np.uint8),
            shape,
            None,  # stretched whole, as the memory loader's arrays: a crop would cut pixels off the masks
            MaskFiles(tuple(mask for _, mask in pairs), len(classes)),
        )
        for split, pairs in index.pairs.items()
        if pairs
    }
    return ImageArrays(classes, splits)


def joined(splits: list[FileSplit]) -> FileSplit:
    """The files of ``splits`` one after the other, as one split."""
    first = splits[0]
    files = tuple(f for s in splits for f in s.files)
    labels = np.concatenate([s.labels for s in splits])
    if first.stored_points is not None:
        points = np.concatenate([s.stored_points for s in splits if s.stored_points is not None])
        return replace(first, files=files, labels=labels, stored_points=points)
    if first.masks is None:
        return replace(first, files=files, labels=labels)
    masks = tuple(m for s in splits if s.masks is not None for m in s.masks.files)
    return replace(first, files=files, labels=labels, masks=replace(first.masks, files=masks))


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
