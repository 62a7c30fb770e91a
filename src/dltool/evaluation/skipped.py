"""The files an evaluation could not read: named in its document (``skipped``), left out of its samples."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from dltool.data.arrays import Split
from dltool.data.files import FileSplit
from dltool.data.loader import BatchLoader
from dltool.data.prepare import PreparedData
from dltool.data.stream import StreamLoader


def unreadable(prepared: PreparedData, split: str, folder: str) -> dict[str, Any]:
    """The files of the scored images that could not be decoded (``skipped``): every one of
    a whole folder (``all``), else those in the split's own sub-folder (the others' split is
    not known). A streamed split adds those its workers meet (``scored_samples``)."""
    listed = [(path, reason) for path, reason in prepared.skipped if split == "all" or _in_split(path, folder, split)]
    return {"skipped": [{"path": path, "reason": reason} for path, reason in listed]} if listed else {}


def _in_split(path: str, folder: str, split: str) -> bool:
    parts = Path(os.path.relpath(path, folder)).parts
    return len(parts) > 1 and parts[0] == split


def scored_samples(
    samples: Split | FileSplit, loader: BatchLoader | StreamLoader, document: dict[str, Any]
) -> Split | FileSplit:
    """The samples the loader could decode: a streamed split's unreadable files are left
    out, and listed in the document (``skipped``)."""
    if not isinstance(loader, StreamLoader) or not isinstance(samples, FileSplit) or not loader.skipped:
        return samples
    skipped = sorted(loader.skipped)
    met = [{"path": samples.path(i), "reason": loader.skipped[i]} for i in skipped]
    document["skipped"] = document.get("skipped", []) + met
    return samples.take(np.setdiff1d(np.arange(len(samples)), np.array(skipped, dtype=np.int64)))
