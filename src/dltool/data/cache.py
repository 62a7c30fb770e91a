"""Decoded datasets cached as uint8 arrays in a safetensors file (no pickle, written atomically).

A cache is keyed by a fingerprint of its sources: when they change, it is rebuilt. A
missing, stale or unreadable cache is simply rebuilt; one that cannot be written (a
read-only root) is skipped. Reading memory-maps the tensors (copy-on-write), so opening a
large cache costs no copy and pages are read as batches touch them.

Layout: per split ``<split>.images`` (uint8 N×C×H×W) and ``<split>.labels`` (int64; float32
for keypoint and regression targets), then,
for image folders, ``source`` (the UTF-8 JSON of the ``SourceReport``: which file each row
came from, what was skipped). The report is a tensor rather than header metadata so that
the header's size is known before the first image is decoded: ``dltool.data.cache_writer``
reserves it, writes rows in place and fills it in last.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import PIL

from dltool._io import atomic_open, sweep_stale_temporaries
from dltool._safetensors import read_header
from dltool.data.arrays import ImageArrays, LoadReport, SourceReport, Split
from dltool.data.images import DECODER
from dltool.data.roots import data_root
from dltool.errors import DiskFullError

DTYPES = {"U8": np.uint8, "I64": np.int64, "F32": np.float32}  # F32: keypoint and regression targets
SOURCE = "source"  # the tensor holding the SourceReport's JSON


def folder_cache_dir(root: Path, cache_root: str | Path | None) -> Path:
    """The data root's folder for what is cached of image folder ``root`` (by its absolute path)."""
    absolute = str(root.resolve())
    slug = re.sub(r"[^\w.-]+", "_", Path(absolute).name)[:40] or "root"
    digest = hashlib.sha256(absolute.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return data_root(cache_root) / "folders" / f"{slug}-{digest}"


def fit_cache_name(prefix: str, image_size: int | None, channels: int | None, crop_pct: float | None) -> str:
    """The file name of a folder's cache for one fit: size, channel count and crop."""
    crop = "" if crop_pct is None else f"-crop-{crop_pct:g}"
    return f"{prefix}size-{image_size or 'auto'}-channels-{channels or 'auto'}{crop}.safetensors"


def decoded_fingerprint(cache_format: str, fit: Mapping[str, Any], index: Any) -> str:
    """The key of a folder's decoded arrays: the cache's format, the decoder's and Pillow's
    versions, how each image is fitted, and the folder's ``index`` (a dataclass: its files'
    stamps and rows) less its root."""
    document = {
        "format": cache_format,
        "decoder": DECODER,
        "pillow": PIL.__version__,
        "fit": dict(fit),
        "index": {key: value for key, value in asdict(index).items() if key != "root"},
    }
    return hashlib.sha256(json.dumps(document, separators=(",", ":"), default=str).encode()).hexdigest()


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
        # a read-only or full data root still trains, it just decodes every time
        return replace(arrays, load=LoadReport(arrays.samples, "not written"))
    return replace(arrays, load=LoadReport(arrays.samples, "written"))


def header_bytes(
    entries: Mapping[str, tuple[str, tuple[int, ...], int, int]], metadata: dict[str, str], reserve: int = 0
) -> bytes:
    """The 8-byte length and the JSON header for tensors ``entries`` (name: dtype, shape,
    begin, end), keys sorted; padded with spaces to ``reserve`` bytes at least and to 8-byte
    alignment, as the format allows."""
    document: dict[str, object] = {"__metadata__": metadata}
    for name, (dtype, shape, begin, end) in entries.items():
        document[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [begin, end]}
    text = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    length = max(len(text), reserve)
    length += -length % 8
    return length.to_bytes(8, "little") + text + b" " * (length - len(text))


def byte_view(array: np.ndarray) -> memoryview:
    """The bytes of ``array`` in C order, without a copy when it is contiguous."""
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8).data


def cache_metadata(fingerprint: str, classes: list[str]) -> dict[str, str]:
    return {"fingerprint": fingerprint, "classes": json.dumps(classes)}


def source_bytes(source: SourceReport) -> bytes:
    return json.dumps(asdict(source), separators=(",", ":")).encode()


def write_cache(path: Path, fingerprint: str, arrays: ImageArrays) -> None:
    """Write ``arrays`` tensor by tensor from where they lie (no copy of the whole set)."""
    tensors: dict[str, np.ndarray] = {}
    for name, split in arrays.splits.items():
        tensors[f"{name}.images"] = np.ascontiguousarray(split.images)
        tensors[f"{name}.labels"] = np.ascontiguousarray(split.labels)
    if arrays.source is not None:
        tensors[SOURCE] = np.frombuffer(source_bytes(arrays.source), dtype=np.uint8)
    entries, offset = {}, 0
    for name, array in tensors.items():
        dtype = next(code for code, kind in DTYPES.items() if array.dtype == kind)
        entries[name] = (dtype, array.shape, offset, offset + array.nbytes)
        offset += array.nbytes
    with atomic_open(path) as file:
        file.write(header_bytes(entries, cache_metadata(fingerprint, arrays.classes)))
        for array in tensors.values():
            file.write(byte_view(array))


def read_cache(path: Path, fingerprint: str) -> ImageArrays | None:
    """The cached arrays, memory-mapped; None when missing, stale or malformed."""
    try:
        header = read_header(path)
        metadata = header.metadata
        if metadata.get("fingerprint") != fingerprint:
            return None
        tensors = {name: _map(path, header.data_start, entry) for name, entry in header.tensors.items()}
        classes = json.loads(metadata["classes"])
        source = _source(json.loads(bytes(tensors.pop(SOURCE)))) if SOURCE in tensors else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    names = {key.rsplit(".", 1)[0] for key in tensors}
    try:
        splits = {n: Split(tensors[f"{n}.images"], tensors[f"{n}.labels"]) for n in sorted(names)}
    except KeyError:
        return None
    return ImageArrays(classes, splits, source, LoadReport(0, "read"))


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
