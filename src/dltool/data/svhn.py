"""SVHN's cropped 32×32 digits, from the MATLAB v5 files the publisher distributes.

``scipy.io.loadmat`` reads MATLAB's own binary format (no pickle). Each file holds ``X``,
uint8 pixels (32, 32, 3, N), and ``y``, labels 1..10 with 10 standing for the digit 0.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from dltool.data.arrays import ImageArrays, Split
from dltool.data.cache import cached
from dltool.data.sources import downloaded_files
from dltool.errors import DatasetError

CLASSES = [str(digit) for digit in range(10)]
READER = "svhn-mat v1"  # part of the cache fingerprint: bump it when decoding changes


def load_svhn(root: str | Path | None = None) -> ImageArrays:
    """SVHN's 73,257 train and 26,032 test digits (run ``dltool download svhn`` first)."""
    files = downloaded_files("svhn", root)

    def decode() -> ImageArrays:
        return ImageArrays(list(CLASSES), {s: read_mat(files[f"{s}_32x32.mat"]) for s in ("train", "test")})

    return cached(files.folder / "svhn.safetensors", files.fingerprint(READER), decode)


def read_mat(path: Path) -> Split:
    """One SVHN split, checked: uint8 ``X`` of (32, 32, 3, N) and N labels ``y`` in 1..10."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        mat = loadmat(path, variable_names=("X", "y"))
    except (MatReadError, ValueError, TypeError, NotImplementedError, EOFError, OSError, zlib.error) as error:
        raise DatasetError(f"{path}: not a readable MATLAB v5 file ({error})") from None
    if "X" not in mat or "y" not in mat:
        raise DatasetError(f"{path}: has no {'X' if 'X' not in mat else 'y'} variable")
    images, labels = mat["X"], mat["y"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[:3] != (32, 32, 3):
        raise DatasetError(f"{path}: X should be uint8 of shape (32, 32, 3, N), not {images.dtype} of {images.shape}")
    if labels.ndim not in (1, 2) or labels.shape[0] != images.shape[3] or labels.size != images.shape[3]:
        raise DatasetError(f"{path}: y has shape {labels.shape} for {images.shape[3]:,} images")
    labels = labels.reshape(-1)
    if not np.issubdtype(labels.dtype, np.integer) and not np.array_equal(labels, np.round(labels)):
        raise DatasetError(f"{path}: y holds non-integer labels")
    if len(labels) and (labels.min() < 1 or labels.max() > 10):
        bad = labels.min() if labels.min() < 1 else labels.max()
        raise DatasetError(f"{path}: label {bad} is outside 1..10")
    # (H, W, C, N) -> (N, C, H, W); the label 10 marks the digit 0.
    return Split(np.ascontiguousarray(images.transpose(3, 2, 0, 1)), labels.astype(np.int64) % 10)
