"""A keypoint or regression folder kept as file lists for the stream loader (``data.loader:
stream``, or ``auto`` over ``data.memory_budget``): the table read, the images not decoded.

The targets are those the memory loader's arrays hold (``dltool.data.table_decode``):
regression values as they are; keypoints fitted by the evaluation transform, which needs
each image's stored size, so their headers are read once, on threads (no pixel decoded).
A row whose header cannot be read is named and left out here; a file that fails later is
named when a worker meets it and left out of its batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dltool.config.schema import DataConfig
from dltool.data.arrays import ImageArrays, SourceReport
from dltool.data.budget import choose_loader, decoded_shape, sample_headers, stream_shape
from dltool.data.decoding import parallel
from dltool.data.files import FileSplit
from dltool.data.images import ImageDecodeError, read_size
from dltool.data.splits import Draw
from dltool.data.table_decode import PointFit, outside_note
from dltool.data.tables import Row, TableIndex, index_table
from dltool.errors import DatasetError


def streamed_table(config: DataConfig, folder: Path) -> tuple[ImageArrays | None, list[str]]:
    """A keypoint or regression folder as file lists when ``data.loader`` streams it (None:
    held in memory), and the choice's lines."""
    index = index_table(folder, Draw.of(config))
    images = [path for rows in index.rows.values() for path, _ in rows]
    headers = sample_headers(index.root, images)
    choice = choose_loader(config, len(images), decoded_shape(config, headers))
    lines = [choice.line] if choice.line else []
    if choice.kind == "memory":
        return None, lines
    shape = stream_shape(config, headers, len(images))
    stored = _stored_sizes(index) if index.kind == "points" else {}
    fit = PointFit((shape.height, shape.width), config.crop_pct, index.names, config)
    splits, files = {}, {}
    for split, rows in index.rows.items():
        kept = [row for row in rows if not isinstance(stored.get(row[0], (0, 0)), str)]
        if kept:
            splits[split] = _file_split(index, kept, (shape.channels, shape.height, shape.width), fit, stored)
            files[split] = [path for path, _ in kept]
    unreadable = [(path, size) for path, size in stored.items() if isinstance(size, str)]
    if not splits:
        raise DatasetError(f"{index.root}: none of its {len(images)} rows is usable (first: {unreadable[0][0]})")
    notes = [*index.notes, *_outside(index, stored)]
    report = SourceReport(files, sorted(index.skipped + unreadable), {}, {}, notes)
    return ImageArrays(index.names, splits, report), [*lines, *shape.notes]


def _outside(index: TableIndex, stored: dict[str, tuple[int, int] | str]) -> list[str]:
    """``outside_note`` of the rows whose image's size was read (a regression folder has none)."""
    sizes = {path: size for path, size in stored.items() if isinstance(size, tuple)}
    rows = [row for split_rows in index.rows.values() for row in split_rows if row[0] in sizes]
    return outside_note(rows, [sizes[path] for path, _ in rows], index.names)


def _stored_sizes(index: TableIndex) -> dict[str, tuple[int, int] | str]:
    """Each image's stored (width, height), or why its header cannot be read."""
    paths = list(dict.fromkeys(path for rows in index.rows.values() for path, _ in rows))

    def size(path: str) -> tuple[int, int] | str:
        try:
            return read_size(index.root / path)
        except ImageDecodeError as error:
            return error.reason

    return dict(zip(paths, parallel(size, paths, None), strict=True))


def _file_split(
    index: TableIndex,
    rows: list[Row],
    shape: tuple[int, int, int],
    fit: PointFit,
    stored: dict[str, tuple[int, int] | str],
) -> FileSplit:
    """The ``rows`` as a ``FileSplit``: their targets as the memory loader holds them."""
    files = tuple(path for path, _ in rows)
    if index.kind == "values":
        return FileSplit(str(index.root), files, np.array([v for _, v in rows], np.float32), shape, fit.crop_pct)
    targets = np.stack([fit.targets(numbers, stored[path], "points") for path, numbers in rows])  # type: ignore[arg-type]
    points = np.array([numbers for _, numbers in rows], np.float64).reshape(len(rows), -1, 2)
    return FileSplit(str(index.root), files, targets.astype(np.float32), shape, fit.crop_pct, stored_points=points)
