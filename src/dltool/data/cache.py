"""Decoded datasets cached as uint8 arrays in a safetensors file (no pickle, written atomically).

A cache is keyed by a fingerprint of its sources: when they change, it is rebuilt. A
missing, stale or unreadable cache is simply rebuilt; one that cannot be written (a
read-only root) is skipped. Reading memory-maps the tensors (copy-on-write), so opening a
large cache costs no copy and pages are read as batches touch them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
from safetensors.numpy import save as save_arrays

from dltool._io import atomic_write_bytes, sweep_stale_temporaries
from dltool._safetensors import canonical, read_header
from dltool.data.arrays import ImageArrays, SourceReport, Split
from dltool.errors import DiskFullError

DTYPES = {"U8": np.uint8, "I64": np.int64}


def cached(path: Path, fingerprint: str, build: Callable[[], ImageArrays]) -> ImageArrays:
    """The arrays stored at ``path`` for ``fingerprint``, else ``build()`` (then stored).
    Temporaries that a killed writer left in the cache's folder are swept first."""
    sweep_stale_temporaries(path.parent)
    if (arrays := read_cache(path, fingerprint)) is not None:
        return arrays
    arrays = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_cache(path, fingerprint, arrays)
    except (OSError, DiskFullError):
        pass  # a read-only or full data root still trains, it just decodes every time
    return arrays


def write_cache(path: Path, fingerprint: str, arrays: ImageArrays) -> None:
    tensors: dict[str, np.ndarray] = {}
    for name, split in arrays.splits.items():
        tensors[f"{name}.images"] = np.ascontiguousarray(split.images)
        tensors[f"{name}.labels"] = np.ascontiguousarray(split.labels)
    metadata = {"fingerprint": fingerprint, "classes": json.dumps(arrays.classes)}
    if arrays.source is not None:
        metadata["source"] = json.dumps(asdict(arrays.source))
    atomic_write_bytes(path, canonical(save_arrays(tensors, metadata=metadata)))


def read_cache(path: Path, fingerprint: str) -> ImageArrays | None:
    """The cached arrays, memory-mapped; None when missing, stale or malformed."""
    try:
        header = read_header(path)
        metadata = header.metadata
        if metadata.get("fingerprint") != fingerprint:
            return None
        tensors = {name: _map(path, header.data_start, entry) for name, entry in header.tensors.items()}
        classes = json.loads(metadata["classes"])
        source = _source(json.loads(metadata["source"])) if "source" in metadata else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    names = {key.rsplit(".", 1)[0] for key in tensors}
    try:
        splits = {n: Split(tensors[f"{n}.images"], tensors[f"{n}.labels"]) for n in sorted(names)}
    except KeyError:
        return None
    return ImageArrays(classes, splits, source)


def _map(path: Path, data_start: int, entry: dict) -> np.ndarray:
    dtype = np.dtype(DTYPES[entry["dtype"]])
    shape = tuple(int(d) for d in entry["shape"])
    begin, end = (int(x) for x in entry["data_offsets"])
    if end - begin != int(np.prod(shape)) * dtype.itemsize or data_start + end > path.stat().st_size:
        raise ValueError("tensor extent does not match its shape")
    if begin == end:
        return np.empty(shape, dtype)
    # Copy-on-write: writable (torch.from_numpy does not warn) yet never written back.
    return np.memmap(path, dtype=dtype, mode="c", offset=data_start + begin, shape=shape)


def _source(raw: dict) -> SourceReport:
    raw["skipped"] = [tuple(item) for item in raw["skipped"]]
    return SourceReport(**raw)
