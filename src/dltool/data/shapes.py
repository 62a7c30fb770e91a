"""``shapes-seg``: a generated segmentation dataset that teaches, made offline and the same every time.

Coloured circles, squares and triangles (one to three per image, later ones over earlier
ones) on textured backgrounds: a smooth colour gradient with pixel noise. Drawn without
anti-aliasing into the image and, with the class index, into the mask, so that every pixel's
label is exact. ``dltool download shapes-seg`` writes
``DATA/shapes-seg/{train,val,test}/{images,masks}/NNNN.png`` and ``classes.txt`` (a
segmentation folder, ``dltool.data.masks``): the files are made in a folder beside the final
one and renamed into place, so an interrupted run leaves nothing half made.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from dltool._io import fsync_dir
from dltool.data.arrays import ImageArrays
from dltool.data.mask_decode import load_masks
from dltool.data.masks import CLASSES_FILE, IMAGES, MASKS, index_masks
from dltool.data.roots import data_root
from dltool.errors import DatasetError

NAME = "shapes-seg"
CLASSES = ["background", "circle", "square", "triangle"]
SIZE = 48  # px a side
COUNTS = {"train": 600, "val": 100, "test": 100}
SEEDS = {"train": 0, "val": 1, "test": 2}  # each image: its own generator of (split seed, index)


def load_shapes_seg(
    root: str | Path | None = None, image_size: int | None = None, channels: int | None = None
) -> ImageArrays:
    """The generated splits (``dltool download shapes-seg`` first), decoded and cached."""
    folder = data_root(root) / NAME
    if not (folder / CLASSES_FILE).is_file():
        raise DatasetError(f"{NAME} is not made in {folder}: run `dltool download {NAME} --root {data_root(root)}`")
    return load_masks(index_masks(folder), cache_root=root, image_size=image_size, channels=channels)


def write_shapes_seg(root: str | Path | None = None, force: bool = False) -> Path:
    """Make the dataset under the data root (kept when it is there, unless ``force``); its folder."""
    return made_in_place(data_root(root) / NAME, CLASSES_FILE, _write_seg, force)


def _write_seg(building: Path) -> None:
    for split, count in COUNTS.items():
        for kind in (IMAGES, MASKS):
            (building / split / kind).mkdir(parents=True)
        for index in range(count):
            image, mask = shapes_pair(np.random.default_rng([SEEDS[split], index]))
            (building / split / IMAGES / f"{index:04d}.png").write_bytes(png(image))
            (building / split / MASKS / f"{index:04d}.png").write_bytes(png(mask))
    (building / CLASSES_FILE).write_text("\n".join(CLASSES) + "\n", encoding="utf-8")


def made_in_place(folder: Path, last: str, write: Callable[[Path], None], force: bool) -> Path:
    """``folder``, made by ``write`` (given an empty folder beside it, renamed into place once
    every file is on disk) unless its ``last`` file (written last) is there and not ``force``."""
    if (folder / last).is_file() and not force:
        return folder
    building = folder.with_name(folder.name + ".making")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    try:
        write(building)
    except BaseException:  # a full disk, Ctrl-C: nothing half-made is left beside the dataset
        shutil.rmtree(building, ignore_errors=True)
        raise
    os.sync()  # every file on disk before the folder takes its final name
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(building, folder)
    fsync_dir(folder.parent)
    return folder


def shapes_pair(rng: np.random.Generator, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image (H, W, 3) and its mask (H, W) of class indices, both uint8."""
    image = Image.fromarray(background(rng, size))
    mask = Image.new("L", (size, size), 0)
    draw_image, draw_mask = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    for _ in range(int(rng.integers(1, 4))):
        label = int(rng.integers(1, len(CLASSES)))
        radius = float(rng.uniform(0.12, 0.25) * size)
        cx, cy = rng.uniform(radius, size - radius, 2)
        colour = shape_colour(rng)
        shape = outline(label, cx, cy, radius, float(rng.uniform(0, 2 * np.pi)))
        draw_shape(draw_image, label, shape, colour)
        draw_shape(draw_mask, label, shape, label)
    return np.asarray(image), np.asarray(mask)


def shape_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A random colour, made saturated enough to stand out from the dim backgrounds."""
    red, green, blue = (int(c) for c in rng.integers(0, 256, 3))
    saturated = max(red, green, blue) - min(red, green, blue) > 90
    return (red, green, blue) if saturated else (red, 255 - green, blue)


def draw_shape(draw: ImageDraw.ImageDraw, label: int, shape: list[tuple[float, float]], fill: Any) -> None:
    """Shape ``label`` (1 circle, 2 square, 3 triangle) of ``outline``, filled, no anti-aliasing."""
    if label == 1:
        draw.ellipse(shape, fill=fill)
    else:
        draw.polygon(shape, fill=fill)


def outline(label: int, cx: float, cy: float, radius: float, angle: float) -> list[tuple[float, float]]:
    """A circle's bounding box, or a square's or triangle's corners (Pillow's frame: pixel
    centres at whole numbers), the first at ``angle`` from the centre, then clockwise on screen."""
    if label == 1:
        return [(cx - radius, cy - radius), (cx + radius, cy + radius)]
    corners = 4 if label == 2 else 3
    turns = angle + 2 * np.pi * np.arange(corners) / corners
    return [(cx + radius * np.cos(t), cy + radius * np.sin(t)) for t in turns]


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A dim gradient between two random colours, with pixel noise: texture, not a shape."""
    start, end = rng.integers(0, 110, 3), rng.integers(0, 110, 3)
    ramp = np.linspace(0, 1, size)[:, None, None] if rng.random() < 0.5 else np.linspace(0, 1, size)[None, :, None]
    base = start + (end - start) * ramp
    noisy = np.broadcast_to(base, (size, size, 3)) + rng.normal(0, 12, (size, size, 3))
    return noisy.clip(0, 255).astype(np.uint8)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
