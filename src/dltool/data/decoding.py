"""What the three decoders (image folders, segmentation folders, keypoint and regression
tables) share: decoding on threads, the one size that images of mixed sizes are fitted to
when ``data.image_size`` is not set, and the usable rows of each split."""

from __future__ import annotations

import os
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from dltool.data.images import ImageDecodeError, read_size
from dltool.errors import DatasetError

Progress = Callable[[int, int], None]  # (files done, files in all), from the calling thread
Size = tuple[int, int]  # (height, width)


def parallel(function: Callable, items: Sequence, workers: int | None, progress: Progress | None = None) -> list:
    """``function`` of each item, in order, on ``workers`` threads (None: one per core)."""
    if len(items) < 2 or workers == 1:
        return _collect(map(function, items), len(items), progress)
    # Pillow decodes with the GIL released, but small images are mostly Python overhead:
    # more threads than cores only contend for the GIL.
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return _collect(pool.map(function, items), len(items), progress)


def _collect(results: Iterable, total: int, progress: Progress | None) -> list:
    collected = []
    for result in results:
        collected.append(result)
        if progress is not None:
            progress(len(collected), total)
    return collected


def header_size(path: str | Path) -> Size | None:
    """A file's (height, width) by its header; None when it cannot be read."""
    try:
        width, height = read_size(path)
    except ImageDecodeError:
        return None
    return height, width


def fitted_size(counts: Counter[Size]) -> Size:
    """The (height, width) that images of ``counts``' sizes are fitted to without
    ``data.image_size``: the size that half of them or more share (ties: the larger area, then
    the larger size), else their median height and width, so that a few outliers (two
    3000x2000 photos among thumbnails) do not set the size of all."""
    size, count = max(counts.items(), key=lambda item: (item[1], item[0][0] * item[0][1], item[0]))
    if 2 * count >= counts.total():
        return size
    return _median(counts, 0), _median(counts, 1)


def _median(counts: Counter[Size], axis: int) -> int:
    return statistics.median_low(size[axis] for size, count in counts.items() for _ in range(count))


def common_size(root: Path, files: Sequence[str], notes: list[str], workers: int | None) -> Size:
    """``fitted_size`` of ``files`` (relative to ``root``) by their headers, read on threads;
    ``notes`` gets the note when they differ. (1, 1) when none is readable: decoding names each."""
    counts = Counter(s for s in parallel(lambda file: header_size(root / file), files, workers) if s is not None)
    if not counts:
        return 1, 1
    size = fitted_size(counts)
    notes.extend(mixed_sizes_note(counts, size))
    return size


def mixed_sizes_note(counts: Counter[Size], size: Size) -> list[str]:
    """The note that images of several sizes (``counts``) were all resized to ``size``; none
    when they share one."""
    if len(counts) < 2:
        return []
    height, width = size
    total = counts.total()
    why = (
        f"the most common ({counts[size]} of {total})"
        if 2 * counts[size] >= total
        else f"their median height and width (no size is shared by half of the {total})"
    )
    return [
        f"the images have {len(counts)} sizes: all resized to {width}x{height}, {why}; set data.image_size to choose another"
    ]


def split_members(
    rows: Sequence[tuple[str, Any]],
    good: list[int],
    listed: Mapping[str, Sequence[Any]],
    root: Path,
    what: tuple[str, str],
    notes: list[str],
) -> dict[str, list[int]]:
    """The usable rows (``good``: indices into ``rows``, each ``(split, ...)``) of every split
    ``listed`` that has any; a note for a listed split left with none, a ``DatasetError`` when
    that is train. ``what``: one row and several, as the messages name them."""
    one, several = what
    members: dict[str, list[int]] = {}
    for split, listed_rows in listed.items():
        if chosen := [i for i in good if rows[i][0] == split]:
            members[split] = chosen
        elif listed_rows:
            notes.append(f"the {split} split has no usable {several} and is left out")
    if "train" not in members:
        raise DatasetError(f"{root}: no usable {one} in its train split")
    return members
