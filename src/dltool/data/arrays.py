"""Image datasets as arrays: the common currency between loaders, splits and the engine."""

from __future__ import annotations

import mmap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Self, TypeVar

import numpy as np

if TYPE_CHECKING:
    from dltool.data.files import FileSplit

# Pixels per chunk when a split is read piece by piece (statistics, resizing, copies to a
# device): 8 MiB of uint8, so the temporaries of a chunk (bincount's 8-byte copy, a float
# resize) stay under 100 MiB whatever the dataset's size; large enough that the per-chunk
# costs (a mapping, a few calls) are lost in the pixel work.
CHUNK_PIXELS = 8 << 20


@dataclass(frozen=True)
class Split:
    """One split: uint8 images (N, C, H, W) and int64 labels (N,).

    ``rows``, when set, names the rows of ``pixels`` that hold the split's images, in order:
    a split drawn from another (the val split, a class subset, a few-shot draw) indexes its
    array, memory-mapped cache included, instead of copying it. ``images`` gives the split's
    images as one array (a copy when ``rows`` is set: for small uses); code that reads a whole
    split goes through ``chunks``.
    """

    pixels: np.ndarray
    labels: np.ndarray
    rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def images(self) -> np.ndarray:
        return self.pixels if self.rows is None else self.pixels[self.rows]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of every image."""
        return tuple(self.pixels.shape[1:])  # type: ignore[return-value]

    @property
    def row_index(self) -> np.ndarray:
        """The row of ``pixels`` each sample sits in."""
        return np.arange(len(self.pixels), dtype=np.int64) if self.rows is None else self.rows

    @property
    def targets(self) -> np.ndarray:
        """The labels (a ``FileSplit`` of a segmentation folder decodes its masks here)."""
        return self.labels

    def image(self, index: int) -> np.ndarray:
        """Sample ``index``'s image (C, H, W)."""
        return self.pixels[index if self.rows is None else self.rows[index]]

    def take(self, indices: np.ndarray) -> Split:
        """The samples ``indices`` (into this split), sharing ``pixels``: no image is copied."""
        return Split(self.pixels, self.labels[indices], self.row_index[indices])

    def relabelled(self, labels: np.ndarray) -> Split:
        """The same images with other labels."""
        return Split(self.pixels, labels, self.rows)

    def chunks(self, max_pixels: int | None = None) -> Iterator[np.ndarray]:
        """The split's images in order, as arrays of at most ``max_pixels`` values (one image at
        least). A memory-mapped ``pixels`` is read through a short-lived mapping per chunk, so
        the pages read leave the process with the chunk: reading a split costs one chunk of
        memory, not the split."""
        per_row = max(1, int(np.prod(self.image_shape)))
        step = max(1, (max_pixels or CHUNK_PIXELS) // per_row)
        for start in range(0, len(self), step):
            yield self._rows(start, min(len(self), start + step))

    def _rows(self, start: int, end: int) -> np.ndarray:
        if self.rows is None and not _is_mapped(self.pixels):
            return self.pixels[start:end]
        rows = self.row_index[start:end]
        if not _is_mapped(self.pixels) or not len(rows):
            return self.pixels[rows]
        first, last = int(rows.min()), int(rows.max())
        pixels = self.pixels
        assert isinstance(pixels, np.memmap) and pixels.filename is not None
        span = np.memmap(
            pixels.filename,
            dtype=pixels.dtype,
            mode="r",
            offset=pixels.offset + first * pixels[0].nbytes,
            shape=(last - first + 1, *pixels.shape[1:]),
        )
        picked = np.array(span[rows - first])
        del span  # unmapped here: its pages no longer count against the process
        return picked


def _is_mapped(pixels: np.ndarray) -> bool:
    """A memory map of a file opened for itself (not a view of another array)."""
    return isinstance(pixels, np.memmap) and isinstance(pixels.base, mmap.mmap) and pixels.filename is not None


def target_kind(labels: np.ndarray) -> str:
    """What a split's labels are: ``labels`` (int64 class indices (N,)), ``masks`` (class index
    maps (N, H, W)), ``points`` (float (N, K + 2, 2): see ``dltool.data.table_decode``) or
    ``values`` (float (N, T) regression targets)."""
    if labels.dtype.kind == "f":
        return "points" if labels.ndim == 3 else "values"
    return "masks" if labels.ndim == 3 else "labels"


class Takeable(Protocol):
    """A split of either kind (arrays, or files for the stream loader): labels and subsets."""

    @property
    def labels(self) -> np.ndarray: ...

    def __len__(self) -> int: ...

    def take(self, indices: np.ndarray) -> Self: ...


# Val draws and subsets keep a split the kind it came in.
AnySplit = TypeVar("AnySplit", bound=Takeable)


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
class LoadReport:
    """How a dataset reached memory in this process: ``decoded`` files or records decoded
    (0 when a cache had them), and ``cache``: ``read``, ``written``, or ``not written`` (a
    read-only or full data root: decoded into memory)."""

    decoded: int
    cache: str

    def describe(self) -> str:
        if self.cache == "read":
            return "read from the cache"
        return f"decoded {self.decoded:,} images, cache {self.cache}"


@dataclass(frozen=True)
class ImageArrays:
    """A dataset's splits by name ('train', optionally 'val', 'test') and its class names
    (``FileSplit``s: an image folder that the stream loader reads file by file)."""

    classes: list[str]
    splits: Mapping[str, Split | FileSplit]
    source: SourceReport | None = None
    load: LoadReport | None = None

    @property
    def samples(self) -> int:
        """How many samples the splits hold together."""
        return sum(len(split) for split in self.splits.values())


def label_counts(labels: np.ndarray, classes: int) -> np.ndarray:
    """Samples per class (labels (N,)), or of masks (N, H, W) pixels per class, ignored
    pixels (255) left out: (classes,) int64."""
    return np.bincount(np.asarray(labels).reshape(-1), minlength=classes)[:classes]


def point_counts(labels: np.ndarray, points: int) -> np.ndarray:
    """Per point of keypoint labels (N, K + 2, 2), the images where it is present: (K,) int64."""
    return (~np.isnan(np.asarray(labels)[:, :points]).any(2)).sum(0)
