"""MNIST, Fashion-MNIST and KMNIST: the IDX format, parsed strictly with NumPy.

An IDX file is two zero bytes, a type code, the number of dimensions, one big-endian uint32
per dimension, then exactly that many values. Anything else — another magic number, a
payload a byte too long or short, a label outside the classes, image and label files that
disagree on the count — is a DatasetError naming the file.
"""

from __future__ import annotations

import math
import struct
from functools import partial
from pathlib import Path

import numpy as np

from dltool.data.arrays import ImageArrays, Split
from dltool.data.cache import cached
from dltool.data.sources import LocalFiles, downloaded_files
from dltool.errors import DatasetError

# IDX type codes and the NumPy types they stand for (multi-byte values are big-endian).
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IMAGE_SIZE = (28, 28)
READER = "idx v1"  # part of the cache fingerprint: bump it when decoding changes

CLASSES = {
    "mnist": [str(digit) for digit in range(10)],
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    # The romanised names of the ten hiragana お き す つ な は ま や れ を.
    "kmnist": ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
}


def load_mnist(root: str | Path | None = None) -> ImageArrays:
    """MNIST's 60,000 train and 10,000 test digits (run ``dltool download mnist`` first)."""
    return load_idx_dataset("mnist", root)


def load_fashion_mnist(root: str | Path | None = None) -> ImageArrays:
    """Fashion-MNIST's 60,000 train and 10,000 test articles."""
    return load_idx_dataset("fashion-mnist", root)


def load_kmnist(root: str | Path | None = None) -> ImageArrays:
    """KMNIST's 60,000 train and 10,000 test cursive hiragana."""
    return load_idx_dataset("kmnist", root)


def load_idx_dataset(name: str, root: str | Path | None) -> ImageArrays:
    files = downloaded_files(name, root)
    decode = partial(_decode, files, CLASSES[name])
    return cached(files.folder / f"{name}.safetensors", files.fingerprint(READER), decode)


def _decode(files: LocalFiles, classes: list[str]) -> ImageArrays:
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = files[f"{prefix}-images-idx3-ubyte"], files[f"{prefix}-labels-idx1-ubyte"]
        splits[split] = read_split(images, labels, len(classes))
    return ImageArrays(classes=list(classes), splits=splits)


def read_split(images_path: Path, labels_path: Path, num_classes: int) -> Split:
    """One split from its IDX image file (N, 28, 28) and label file (N,)."""
    images = read_idx(images_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SIZE:
        raise DatasetError(f"{images_path}: expected uint8 images of 28×28, found {_describe(images)}")
    labels = read_idx(labels_path)
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetError(f"{labels_path}: expected one uint8 label per image, found {_describe(labels)}")
    if len(labels) != len(images):
        raise DatasetError(
            f"{labels_path}: {len(labels):,} labels for the {len(images):,} images of {images_path.name}"
        )
    if len(labels) and labels.max() >= num_classes:
        raise DatasetError(f"{labels_path}: label {labels.max()} is outside the {num_classes} classes")
    return Split(images[:, None, :, :].copy(), labels.astype(np.int64))


def read_idx(path: Path) -> np.ndarray:
    """The array in IDX file ``path``, after checking its header against its exact size."""
    data = path.read_bytes()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in IDX_TYPES or data[3] == 0:
        raise DatasetError(f"{path}: not an IDX file (magic number {data[:4].hex() or 'missing'})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{path}: the header is cut short ({len(data)} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(IDX_TYPES[data[2]])
    expected = math.prod(dims) * dtype.itemsize
    if len(data) - header != expected:
        shape = "×".join(map(str, dims))
        raise DatasetError(
            f"{path}: {len(data) - header:,} bytes of data where its dimensions {shape} need {expected:,}"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def _describe(array: np.ndarray) -> str:
    return f"{array.dtype} of shape {array.shape}"
