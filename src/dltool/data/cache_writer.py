"""Rows of a dataset written straight into place as they are decoded, so that building a
cache costs one image per thread in memory, not the decoded set.

``FileRows`` reserves the cache file (a temporary beside it, see ``dltool._io.atomic_open``):
a header of the largest size it can take, then per split room for every file of the split
(``capacity`` rows of ``shape``). Decoding threads write each image at its row. ``finish``
then compacts in place what must move (rows of skipped files, grey images stored as RGB
while the channel count was not known yet), writes the labels, the source report and the
header, and the temporary is renamed over the cache: a crash or a kill at any point leaves
no half-written cache, only a temporary that the next run sweeps.

``MemoryRows`` does the same in memory, for a data root that cannot take the file.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dltool._io import atomic_open
from dltool.data.arrays import CHUNK_PIXELS, SourceReport
from dltool.data.cache import byte_view, cache_metadata, header_bytes, source_bytes

# Larger than any offset or dimension a header can hold: reserving with it bounds the header.
_WIDEST = 10**19


@dataclass(frozen=True)
class Plan:
    """Room for ``capacity`` rows per split (in file order), each image ``shape`` (C, H, W)."""

    capacity: dict[str, int]
    shape: tuple[int, int, int]

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class Kept:
    """What ``finish`` keeps: per split, the rows that decoded (sorted) and their labels,
    stored with ``channels`` channels (fewer than the plan's when grey images were widened)."""

    rows: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    channels: int


class MemoryRows:
    """The decoded rows held in memory (the fallback when the cache cannot be written)."""

    def __init__(self, plan: Plan):
        self.arrays = {split: np.empty((n, *plan.shape), np.uint8) for split, n in plan.capacity.items()}

    def write(self, split: str, row: int, image: np.ndarray) -> None:
        self.arrays[split][row] = image

    def finish(self, kept: Kept) -> dict[str, np.ndarray]:
        return {split: _kept(self.arrays[split], rows, kept.channels) for split, rows in kept.rows.items()}


class FileRows:
    """The decoded rows written into the cache file as they come (see the module docstring)."""

    def __init__(self, fd: int, plan: Plan, metadata: dict[str, str]):
        self.fd, self.plan, self.metadata = fd, plan, metadata
        widest = {name: ("U8", (_WIDEST,) * 4, _WIDEST, _WIDEST) for name in _names(plan)}
        self.data_start = len(header_bytes(widest, metadata))
        self.regions, offset = {}, 0
        for split, n in plan.capacity.items():
            self.regions[split] = offset
            offset += n * plan.row_bytes
        _reserve(fd, self.data_start + offset)

    def write(self, split: str, row: int, image: np.ndarray) -> None:
        offset = self.data_start + self.regions[split] + row * self.plan.row_bytes
        _write_at(self.fd, np.ascontiguousarray(image, dtype=np.uint8), offset)

    def finish(self, kept: Kept, source: SourceReport) -> None:
        """Compact the kept rows, then write labels, source report and header; the file
        ends where its data does."""
        h, w = self.plan.shape[1:]
        entries, end = {}, 0
        for split, rows in kept.rows.items():
            size = len(rows) * kept.channels * h * w
            self._compact(self.regions[split], rows, end, kept.channels)
            entries[f"{split}.images"] = ("U8", (len(rows), kept.channels, h, w), end, end + size)
            end += size
        tails = {f"{split}.labels": labels.astype(np.int64) for split, labels in kept.labels.items()}
        tails["source"] = np.frombuffer(source_bytes(source), np.uint8)
        for name, array in tails.items():
            _write_at(self.fd, array, self.data_start + end)
            entries[name] = ("I64" if array.dtype == np.int64 else "U8", array.shape, end, end + array.nbytes)
            end += array.nbytes
        header = header_bytes(entries, self.metadata, reserve=self.data_start - 8)
        assert len(header) == self.data_start  # reserved with the widest numbers
        _write_at(self.fd, np.frombuffer(header, np.uint8), 0)
        os.ftruncate(self.fd, self.data_start + end)

    def _compact(self, source: int, rows: np.ndarray, target: int, channels: int) -> None:
        """Move the ``rows`` of the region at ``source`` to ``target`` (never after it), as
        ``channels`` channels. Each chunk is read whole before it is written, and a row never
        moves past a row still to be read, so the move is safe in place."""
        c = self.plan.shape[0]
        if source == target and channels == c and np.array_equal(rows, np.arange(len(rows))):
            return  # already in place: the common case, nothing skipped
        per_row = self.plan.row_bytes
        step = max(1, CHUNK_PIXELS // per_row)
        for start in range(0, len(rows), step):
            chunk = np.stack([self._read_row(source, int(r)) for r in rows[start : start + step]])
            _write_at(self.fd, np.ascontiguousarray(chunk[:, :channels]), self.data_start + target)
            target += chunk[:, :channels].nbytes

    def _read_row(self, region: int, row: int) -> np.ndarray:
        size = self.plan.row_bytes
        data = os.pread(self.fd, size, self.data_start + region + row * size)
        if len(data) != size:
            raise OSError(f"short read of a cache row ({len(data)} of {size} bytes)")
        return np.frombuffer(data, np.uint8).reshape(self.plan.shape)


@contextmanager
def file_rows(path: Path, plan: Plan, fingerprint: str, classes: list[str]) -> Iterator[FileRows]:
    """A ``FileRows`` on a temporary beside ``path``: renamed over it when the block ends
    cleanly (after ``finish``), removed when it raises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w+b") as file:
        yield FileRows(file.fileno(), plan, cache_metadata(fingerprint, classes))


def _kept(array: np.ndarray, rows: np.ndarray, channels: int) -> np.ndarray:
    if len(rows) == len(array) and channels == array.shape[1]:
        return array  # nothing skipped, nothing narrowed: no copy
    return array[rows, :channels]


def _names(plan: Plan) -> list[str]:
    return [f"{split}.{part}" for split in plan.capacity for part in ("images", "labels")] + ["source"]


def _reserve(fd: int, size: int) -> None:
    """Allocate the file's blocks now: a full disk fails here, before any decoding, and never
    later as a sparse file's hole that cannot be filled."""
    if hasattr(os, "posix_fallocate"):  # not on macOS
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except OSError as error:
            if error.errno not in {errno.EOPNOTSUPP, errno.EINVAL}:  # a filesystem without it
                raise
    os.ftruncate(fd, size)


def _write_at(fd: int, array: np.ndarray, offset: int) -> None:
    view = byte_view(array)
    while view:
        written = os.pwrite(fd, view, offset)
        if not written:
            raise OSError(errno.EIO, "the cache file took no bytes")
        view, offset = view[written:], offset + written
