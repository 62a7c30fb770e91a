"""An image folder's files decoded into its dataset arrays, each image written to its row of
the cache as soon as it is decoded (``dltool.data.cache_writer``): decoding a folder costs
one image per thread in memory, whatever the folder's size, and a crash leaves no cache.

Sizes: with ``image_size`` every image goes through the evaluation transform
(``dltool.data.images.fit_image``: resized to cover ``image_size / crop_pct``, centre-cropped
to the square); without it, images that all share one size keep it, and mixed sizes are all
fitted to the one most share, or to their median size (``dltool.data.decoding.fitted_size``;
a note says so). A first pass then reads the sizes from the
files' headers, so that rows are written at their final size (if files that fail to decode
change the outcome, the folder is decoded again). Channels: 1 or 3 as asked; without a
choice, 1 when every image is grey (rows are written as RGB until that is known, then
narrowed).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dltool.data.arrays import ImageArrays, LoadReport, SourceReport, Split
from dltool.data.cache import read_cache
from dltool.data.cache_writer import FileRows, Kept, MemoryRows, Plan, file_rows
from dltool.data.decoding import Progress, fitted_size, header_size, mixed_sizes_note, parallel
from dltool.data.images import ImageDecodeError, fit_image, read_image, to_channels
from dltool.errors import DatasetError, DiskFullError

if TYPE_CHECKING:
    from dltool.data.folders import FolderIndex

Row = tuple[str, str, int]  # (split, path relative to the folder, label)


@dataclass(frozen=True)
class _Decoded:
    """What decoding one file found; the pixels themselves went straight to their row."""

    channels: int = 0  # natural channels (1 grey, 3 colour); 0 when the file was skipped
    mode: str = ""
    size: tuple[int, int] = (0, 0)  # (width, height) as stored, after the EXIF orientation
    reason: str = ""


@dataclass(frozen=True)
class Fit:
    """What a folder's images are made into: ``image_size`` (None: their own, see the module
    docstring), ``channels`` (None: their own), ``crop_pct`` of the evaluation transform."""

    image_size: int | None = None
    channels: int | None = None
    crop_pct: float | None = 1.0


@dataclass(frozen=True)
class _Target:
    """The (height, width) every row is stored at; ``fit_all``: every image goes through
    ``fit_image`` (a size was asked for, or the folder's sizes are mixed)."""

    size: tuple[int, int]
    fit_all: bool


class _OtherTarget(Exception):
    """The decoded files call for another target than their headers did."""

    def __init__(self, target: _Target):
        self.target = target


def decode_folder(
    index: FolderIndex,
    fit: Fit,
    workers: int | None = None,
    *,
    cache: tuple[Path, str] | None = None,
    progress: Progress | None = None,
) -> ImageArrays:
    """Decode every file of ``index`` (in threads) into arrays, written into the cache file
    ``cache`` (path, fingerprint) and returned memory-mapped from it; in memory when there
    is no cache or it cannot be written (a read-only or full data root)."""
    rows = [(split, relative, label) for split, files in index.files.items() for relative, label in files]
    if fit.image_size is not None:
        target = _Target((fit.image_size, fit.image_size), True)
    else:
        target = _header_target(index.root, rows, workers)
    decode = _Decode(index, rows, fit, workers, progress)
    try:
        return decode.into(target, cache)
    except _OtherTarget as other:
        return decode.into(other.target, cache)


@dataclass(frozen=True)
class _Decode:
    index: FolderIndex
    rows: list[Row]
    fit: Fit
    workers: int | None
    progress: Progress | None

    def into(self, target: _Target, cache: tuple[Path, str] | None) -> ImageArrays:
        shape = (self.fit.channels or 3, *target.size)
        plan = Plan({split: len(files) for split, files in self.index.files.items()}, shape)
        if cache is not None:
            try:
                return self._to_file(plan, target, *cache)
            except (OSError, DiskFullError):
                pass  # a read-only or full data root still trains: it decodes into memory
        memory = MemoryRows(plan)
        kept, report = self._fill(memory, target)
        pixels = memory.finish(kept)
        splits = {split: Split(pixels[split], kept.labels[split]) for split in kept.rows}
        arrays = ImageArrays(self.index.classes, splits, report)
        return replace(arrays, load=LoadReport(arrays.samples, "not written"))  # the files it could decode

    def _to_file(self, plan: Plan, target: _Target, path: Path, fingerprint: str) -> ImageArrays:
        with file_rows(path, plan, fingerprint, self.index.classes) as rows:
            kept, report = self._fill(rows, target)
            rows.finish(kept, report)
        arrays = read_cache(path, fingerprint)
        if arrays is None:
            raise OSError(f"{path}: the cache just written does not read back")
        return replace(arrays, load=LoadReport(arrays.samples, "written"))

    def _fill(self, sink: FileRows | MemoryRows, target: _Target) -> tuple[Kept, SourceReport]:
        """Decode every row into ``sink``; what to keep of it, and the source report."""
        position = _positions(self.rows)
        root, width = str(self.index.root), self.fit.channels or 3

        def one(i: int) -> _Decoded:
            split, relative, _ = self.rows[i]
            image, decoded = _decode_one(f"{root}/{relative}", self.fit, target)
            if image is not None:
                sink.write(split, position[i], to_channels(image, width))
            return decoded

        decoded = parallel(one, range(len(self.rows)), self.workers, self.progress)
        return self._kept(decoded, target)

    def _kept(self, decoded: list[_Decoded], target: _Target) -> tuple[Kept, SourceReport]:
        good = [i for i, d in enumerate(decoded) if d.channels]
        skipped = sorted((self.rows[i][1], d.reason) for i, d in enumerate(decoded) if not d.channels)
        if not good:
            raise DatasetError(
                f"{self.index.root}: none of its {len(self.rows)} image files could be decoded "
                f"(first: {skipped[0][0]}: {skipped[0][1]})"
            )
        self._refuse_unreadable_classes(good, decoded)
        notes = list(self.index.notes)
        if self.fit.image_size is None:
            notes += _size_notes([decoded[i] for i in good], target)
        channels = self.fit.channels or (1 if all(decoded[i].channels == 1 for i in good) else 3)
        position = _positions(self.rows)
        kept_rows, labels, files = {}, {}, {}
        for split in self.index.files:
            members = [i for i in good if self.rows[i][0] == split]
            if not members:
                notes.append(f"the {split} split has no readable images and is left out")
                continue
            kept_rows[split] = np.array([position[i] for i in members], dtype=np.int64)
            labels[split] = np.array([self.rows[i][2] for i in members], dtype=np.int64)
            files[split] = [self.rows[i][1] for i in members]
        if "train" in self.index.files and "train" not in kept_rows:
            raise DatasetError(f"{self.index.root}: no readable images in its train split")
        report = SourceReport(
            files=files,
            skipped=skipped,
            sizes=dict(Counter(f"{decoded[i].size[0]}x{decoded[i].size[1]}" for i in good).most_common()),
            modes=dict(Counter(decoded[i].mode for i in good).most_common()),
            notes=notes,
        )
        return Kept(kept_rows, labels, channels), report

    def _refuse_unreadable_classes(self, good: list[int], decoded: list[_Decoded]) -> None:
        """A class folder none of whose files could be read would be a class the model is
        built for and never sees: refused, as it cannot be learned (an empty one is left out)."""
        readable = {self.rows[i][2] for i in good}
        lost = [label for label in range(len(self.index.classes)) if label not in readable]
        if not lost:
            return
        first: dict[int, tuple[str, str]] = {}
        for (_, relative, label), found in zip(self.rows, decoded, strict=True):
            first.setdefault(label, (relative, found.reason))
        raise DatasetError(
            "; ".join(
                f"class folder {self.index.classes[label]!r}: none of its image files could be read "
                f"(first: {first[label][0]}: {first[label][1]})"
                for label in lost
            )
            + ": fix or convert them, or move the folder out of the dataset"
        )


def _decode_one(path: str, fit: Fit, target: _Target) -> tuple[np.ndarray | None, _Decoded]:
    """The image fitted to ``target`` in its natural channels, and what was found."""
    try:
        image, mode, stored = read_image(path, fit.image_size, fit.crop_pct)
    except ImageDecodeError as error:
        return None, _Decoded(reason=error.reason)
    if target.fit_all:
        image = fit_image(image, fit.image_size or target.size, fit.crop_pct)  # decode_image's steps
    return image, _Decoded(image.shape[0], mode, stored)


def _header_target(root: Path, rows: list[Row], workers: int | None) -> _Target:
    """The size to fit to (``fitted_size``) by the files' headers, and whether they differ: what
    decoding will find unless files that fail to decode tip the count."""
    counts = Counter(s for s in parallel(lambda row: header_size(f"{root}/{row[1]}"), rows, workers) if s is not None)
    if not counts:
        return _Target((1, 1), False)  # nothing readable: decoding says so
    return _Target(fitted_size(counts), len(counts) > 1)


def _size_notes(good: list[_Decoded], target: _Target) -> list[str]:
    """Check ``target`` against the decoded files' sizes (``_OtherTarget`` if they call for
    another); the note saying that mixed sizes were resized."""
    counts = Counter((d.size[1], d.size[0]) for d in good)
    chosen = _Target(fitted_size(counts), len(counts) > 1)
    if chosen != target:
        raise _OtherTarget(chosen)
    return mixed_sizes_note(counts, chosen.size)


def _positions(rows: list[Row]) -> list[int]:
    """Each row's index within its split."""
    seen: Counter[str] = Counter()
    positions = []
    for split, _, _ in rows:
        positions.append(seen[split])
        seen[split] += 1
    return positions
