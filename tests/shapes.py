"""Small generated segmentation data: coloured discs and squares on noisy backgrounds, with masks.

Class 0 is the background, 1 a disc, 2 a square; every image has one of each, at random
places, in colours far from the background's, so a tiny U-Net learns them in a test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ["background", "disc", "square"]


def shape_pair(rng: np.random.Generator, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image (H, W, 3) uint8 and its mask (H, W) uint8."""
    image = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
    mask = np.zeros((size, size), np.uint8)
    rows, columns = np.mgrid[:size, :size]
    radius = size // 6
    cy, cx = rng.integers(radius, size - radius, 2)
    disc = (rows - cy) ** 2 + (columns - cx) ** 2 <= radius**2
    side = size // 4
    top, left = rng.integers(0, size - side, 2)
    square = (rows >= top) & (rows < top + side) & (columns >= left) & (columns < left + side)
    image[disc] = (230, 60, 40)
    mask[disc] = 1
    image[square] = (40, 200, 230)
    mask[square] = 2
    return image, mask


def write_pairs(folder: Path, count: int, seed: int = 0, size: int = 32, classes: bool = True) -> Path:
    """``count`` pairs into ``folder``/images/*.png and ``folder``/masks/*.png."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    for k in range(count):
        image, mask = shape_pair(rng, size)
        Image.fromarray(image).save(folder / "images" / f"s{seed}_{k:03d}.png")
        Image.fromarray(mask).save(folder / "masks" / f"s{seed}_{k:03d}.png")
    return folder


def shapes_dataset(root: Path, train: int = 48, val: int = 12, test: int = 12, size: int = 32) -> Path:
    """ROOT/{train,val,test}/{images,masks} and ROOT/classes.txt."""
    for seed, (split, count) in enumerate({"train": train, "val": val, "test": test}.items()):
        if count:
            write_pairs(root / split, count, seed, size)
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    return root
