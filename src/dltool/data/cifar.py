"""CIFAR-10 and CIFAR-100 from their *binary* distribution: fixed-size records, read with NumPy.

A CIFAR-10 record is one label byte and 3,072 pixel bytes (1,024 red, then green, then blue,
row by row: already channels-first). CIFAR-100 records carry two label bytes, the coarse
class (of 20) then the fine one (of 100); dltool trains on the fine labels. The pickled
"python version" of CIFAR is never read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from dltool.data.arrays import ImageArrays, Split
from dltool.data.cache import cached
from dltool.data.sources import CIFAR10_TRAIN_BATCHES, LocalFiles, downloaded_files
from dltool.errors import DatasetError

IMAGE_SHAPE = (3, 32, 32)
PIXELS = 3 * 32 * 32
READER = "cifar-binary v1"  # part of the cache fingerprint: bump it when decoding changes

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR100_CLASSES = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
]
CIFAR100_COARSE_CLASSES = 20


def load_cifar10(root: str | Path | None = None) -> ImageArrays:
    """CIFAR-10's 50,000 train and 10,000 test images (run ``dltool download cifar10`` first)."""
    files = downloaded_files("cifar10", root)

    def decode() -> ImageArrays:
        train = [read_records(files[f"{batch}.bin"], (10,)) for batch in CIFAR10_TRAIN_BATCHES]
        splits = {"train": _concatenate(train), "test": read_records(files["test_batch.bin"], (10,))}
        return ImageArrays(list(CIFAR10_CLASSES), splits)

    return _cached("cifar10", files, decode)


def load_cifar100(root: str | Path | None = None) -> ImageArrays:
    """CIFAR-100's 50,000 train and 10,000 test images, with their fine labels (100 classes)."""
    files = downloaded_files("cifar100", root)
    label_classes = (CIFAR100_COARSE_CLASSES, len(CIFAR100_CLASSES))

    def decode() -> ImageArrays:
        splits = {split: read_records(files[f"{split}.bin"], label_classes) for split in ("train", "test")}
        return ImageArrays(list(CIFAR100_CLASSES), splits)

    return _cached("cifar100", files, decode)


def read_records(path: Path, label_classes: tuple[int, ...]) -> Split:
    """The records of one CIFAR binary file; ``label_classes`` gives each label byte's number
    of classes, and the last label byte is the one kept."""
    data = path.read_bytes()
    size = len(label_classes) + PIXELS
    if not data or len(data) % size:
        raise DatasetError(f"{path}: {len(data):,} bytes is not a whole number of {size:,}-byte CIFAR records")
    records = np.frombuffer(data, np.uint8).reshape(-1, size)
    for index, classes in enumerate(label_classes):
        if (top := int(records[:, index].max())) >= classes:
            raise DatasetError(f"{path}: label {top} (record byte {index}) is outside the {classes} classes")
    images = records[:, len(label_classes) :].reshape(-1, *IMAGE_SHAPE).copy()
    return Split(images, records[:, len(label_classes) - 1].astype(np.int64))


def _concatenate(splits: list[Split]) -> Split:
    return Split(np.concatenate([s.images for s in splits]), np.concatenate([s.labels for s in splits]))


def _cached(name: str, files: LocalFiles, decode: Callable[[], ImageArrays]) -> ImageArrays:
    return cached(files.folder / f"{name}.safetensors", files.fingerprint(READER), decode)
