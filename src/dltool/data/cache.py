"""Decoded datasets cached as uint8 arrays in a safetensors file (no pickle, written atomically).

A cache is keyed by a fingerprint of its sources: when they change, it is rebuilt. A
missing, stale or unreadable cache is simply rebuilt; one that cannot be written (a
read-only root) is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays

from dltool._io import atomic_write_bytes
from dltool._safetensors import canonical, read_metadata
from dltool.data.arrays import ImageArrays, Split


def cached(path: Path, fingerprint: str, build: Callable[[], ImageArrays]) -> ImageArrays:
    """The arrays stored at ``path`` for ``fingerprint``, else ``build()`` (then stored)."""
    if (arrays := read_cache(path, fingerprint)) is not None:
        return arrays
    arrays = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_cache(path, fingerprint, arrays)
    except OSError:
        pass  # a read-only data root still trains, it just decodes every time
    return arrays


def write_cache(path: Path, fingerprint: str, arrays: ImageArrays) -> None:
    tensors: dict[str, np.ndarray] = {}
    for name, split in arrays.splits.items():
        tensors[f"{name}.images"] = np.ascontiguousarray(split.images)
        tensors[f"{name}.labels"] = np.ascontiguousarray(split.labels)
    metadata = {"fingerprint": fingerprint, "classes": json.dumps(arrays.classes)}
    atomic_write_bytes(path, canonical(save_arrays(tensors, metadata=metadata)))


def read_cache(path: Path, fingerprint: str) -> ImageArrays | None:
    try:
        data = path.read_bytes()
        metadata = read_metadata(data)
        if metadata.get("fingerprint") != fingerprint:
            return None
        tensors = load_arrays(data)
        classes = json.loads(metadata["classes"])
    except (OSError, SafetensorError, ValueError, KeyError):
        return None
    names = {key.rsplit(".", 1)[0] for key in tensors}
    return ImageArrays(classes, {n: Split(tensors[f"{n}.images"], tensors[f"{n}.labels"]) for n in names})
