"""A keypoint or regression index decoded into arrays: uint8 images (N, C, H, W) and float32
targets.

Every image goes through the evaluation transform (``fit_image`` with ``data.crop_pct``) to
``data.image_size`` (square), else to the size most of the images share, or their median size. Regression targets
are (N, T), NaN where missing. Keypoint targets are (N, K + 2, 2), see ``POINT_ROWS``:

- rows 0..K-1: each point (x, y) as a share of the width and height of the image the model
  sees, moved by the same fit as its image; NaN where missing or cut off by the crop;
- rows 0..K-1 also NaN where the CSV put the point beyond the stored image (x over its
  width, y over its height): named in a note (``outside_note``), as a typo is likely;
- row K: the pixels of the stored image per unit of x and of y (errors in pixels);
- row K+1: the distance (px of the stored image) that normalises the NME — the image's
  diagonal, or the distance between the two ``data.nme_points`` — and the PCK threshold,
  ``data.pck_alpha`` times it.

Decoding runs on threads (Pillow releases the GIL); the arrays are cached under the data root
like an image folder's (``dltool.data.cache``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dltool._text import counted, first_few
from dltool.config.schema import DataConfig
from dltool.data.arrays import ImageArrays, SourceReport, Split
from dltool.data.cache import cached, decoded_fingerprint, fit_cache_name, folder_cache_dir
from dltool.data.decoding import common_size, parallel, split_members
from dltool.data.images import ImageDecodeError, fit_image, read_image, to_channels
from dltool.data.resize import fit_transform
from dltool.data.tables import Row, TableIndex
from dltool.errors import DatasetError

CACHE_FORMAT = "dltool-table/2"  # 2: the report notes points beyond their image
POINT_ROWS = 2  # rows after the K points: the pixel scale, then (NME normaliser, PCK threshold)


@dataclass(frozen=True)
class _Decoded:
    channels: int = 0  # of the image's natural form; 0 when unreadable
    stored: tuple[int, int] = (0, 0)  # (width, height)
    reason: str = ""


def load_table(index: TableIndex, config: DataConfig, workers: int | None = None) -> ImageArrays:
    """``decode_table``, once: then read from the data root's cache (memory-mapped) while the
    images, the table's rows and the fit (size, channels, crop, PCK and NME settings) are
    unchanged."""
    name = fit_cache_name(f"{index.kind}-", config.image_size, config.channels, config.crop_pct)
    path = folder_cache_dir(index.root, config.root) / name
    fit = {key: getattr(config, key) for key in ("image_size", "channels", "crop_pct", "pck_alpha", "nme_points")}
    return cached(path, decoded_fingerprint(CACHE_FORMAT, fit, index), lambda: decode_table(index, config, workers))


def decode_table(index: TableIndex, config: DataConfig, workers: int | None = None) -> ImageArrays:
    """Decode every row of ``index`` (see the module docstring). The size comes first (from
    data.image_size, else the files' headers), so each worker decodes a JPEG at the smallest
    scale that still covers it and keeps only the fitted image: memory holds the arrays, not
    the photos."""
    rows = [(split, row) for split, split_rows in index.rows.items() for row in split_rows]
    notes = list(index.notes)
    size = (
        (config.image_size, config.image_size)
        if config.image_size is not None
        else common_size(index.root, [row[0] for _, row in rows], notes, workers)
    )
    images = np.zeros((len(rows), config.channels or 3, *size), np.uint8)
    decoded = parallel(
        lambda i: _decode(index.root / rows[i][1][0], config.crop_pct, images[i]), range(len(rows)), workers
    )
    good = [i for i, d in enumerate(decoded) if d.channels]
    skipped = index.skipped + [(rows[i][1][0], d.reason) for i, d in enumerate(decoded) if not d.channels]
    if not good:
        first = f" (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise DatasetError(f"{index.root}: none of its {len(rows)} rows is usable{first}")
    if config.channels is None and max(decoded[i].channels for i in good) == 1:
        images = images[:, :1]  # every image grey: its one channel (to_channels(·, 3) repeated it)
    if index.kind == "points":
        notes += outside_note([rows[i][1] for i in good], [decoded[i].stored for i in good], index.names)
    fit = PointFit(size, config.crop_pct, index.names, config)
    splits, files = {}, {}
    for split, members in split_members(rows, good, index.rows, index.root, ("row", "rows"), notes).items():
        targets = [fit.targets(rows[i][1][1], decoded[i].stored, index.kind) for i in members]
        splits[split] = Split(images[np.array(members, np.int64)], np.stack(targets).astype(np.float32))
        files[split] = [rows[i][1][0] for i in members]
    sizes = Counter(f"{decoded[i].stored[0]}x{decoded[i].stored[1]}" for i in good)
    report = SourceReport(files, sorted(skipped), dict(sizes.most_common()), {}, notes)
    return ImageArrays(index.names, splits, report)


class PointFit:
    """The evaluation transform of one size and crop, applied to a row's numbers."""

    def __init__(self, size: tuple[int, int], crop_pct: float | None, names: list[str], config: DataConfig):
        self.size, self.crop_pct = size, crop_pct
        self.alpha = config.pck_alpha
        self.pair = None if config.nme_points is None else [names.index(n) for n in config.nme_points]

    def targets(self, numbers: tuple[float, ...], stored: tuple[int, int], kind: str) -> np.ndarray:
        """(T,) values as they are, or (K + 2, 2) points fitted (see the module docstring)."""
        values = np.array(numbers, dtype=np.float64)
        if kind == "values":
            return values
        points = values.reshape(-1, 2)
        scale, offset = fit_transform(stored, self.size, self.crop_pct)
        fitted = shares(points, scale, offset, self.size)
        per_unit = np.array(self.size[::-1]) / scale
        norm = (
            math.hypot(*stored)
            if self.pair is None
            else float(np.linalg.norm(points[self.pair[0]] - points[self.pair[1]]))
        )
        return np.concatenate([fitted, per_unit[None], [[norm, self.alpha * norm]]])


def outside_note(rows: Sequence[Row], sizes: Sequence[tuple[int, int]], names: list[str]) -> list[str]:
    """A note naming the points of ``rows`` beyond their stored image (``sizes``: (width,
    height) row by row), which are missing; none when every point lies inside."""
    far = [
        f"{path}: {name} at ({x:g}, {y:g}) in {width}x{height}"
        for (path, numbers), (width, height) in zip(rows, sizes, strict=True)
        for name, x, y in zip(names, numbers[::2], numbers[1::2], strict=True)
        if x > width or y > height
    ]
    return (
        [f"{counted(len(far), 'point')} beyond the image taken as missing (a typo?): {first_few(far)}"] if far else []
    )


def shares(points: np.ndarray, scale: np.ndarray, offset: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``points`` (K, 2), pixels of a stored image, as shares of the width and height of the
    ``size`` (height, width) image that maps a stored position p to p · scale − offset; NaN
    where that image leaves them out."""
    fitted = (points * scale - offset) / np.array(size[::-1])
    fitted[~((fitted >= 0) & (fitted <= 1)).all(1)] = math.nan  # cut off by the crop
    return fitted


def box_shares(points: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """``shares`` of the box (top, left, rows, columns) of a stored image resized to ``size``
    (height, width): a random-resized crop cut from the file."""
    top, left, rows, columns = box
    scale = np.array([size[1] / columns, size[0] / rows])
    return shares(points, scale, np.array([left, top]) * scale, size)


def _decode(path: Path, crop_pct: float | None, out: np.ndarray) -> _Decoded:
    """Fit the image at ``path`` into ``out`` (C, H, W) by the evaluation transform."""
    size = (out.shape[1], out.shape[2])
    try:
        image, _mode, stored = read_image(path, size, crop_pct)
    except ImageDecodeError as error:
        return _Decoded(reason=error.reason)
    out[...] = to_channels(fit_image(image, size, crop_pct), len(out))
    return _Decoded(len(image), stored)
