"""Segmentation folders: images and their masks, paired by file stem.

Layouts: ``ROOT/{train,val,test}/{images,masks}/`` (train required), or one pool
``ROOT/images/`` + ``ROOT/masks/``, the train split from which ``prepare_data`` draws the
test and val splits (``data.test_fraction``, ``data.val_fraction``; seeded, at random).
A mask is an image file holding one class index per pixel (a PNG of mode L, P or I;16): 255 marks pixels to ignore, never trained on nor scored.
Class names come from ``ROOT/classes.txt`` (one per line, in index order); without it,
classes are numbered 0..the largest label the masks hold.

Pairs are matched by stem (``images/cat_1.jpg`` with ``masks/cat_1.png``): an image without
a mask and a mask without an image are skipped and named in ``MaskIndex.skipped``; a pair
whose sizes differ or whose mask holds a label outside the classes is skipped when decoded
(``dltool.data.mask_decode``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dltool._io import file_stamp
from dltool.data.folders import SPLITS
from dltool.data.walk import is_image_name
from dltool.errors import DatasetError

IMAGES, MASKS = "images", "masks"
CLASSES_FILE = "classes.txt"
MAX_CLASSES = 255  # class indices 0..254: 255 is the ignore value

Pair = tuple[str, str]  # (image, mask): paths relative to the index's root, POSIX form


@dataclass(frozen=True)
class MaskIndex:
    """The pairs of a segmentation dataset, per split in row order.

    ``classes``: the names, or None to number them from the labels found; ``lut``: the class
    index of each raw mask value 0..255 (IGNORE for pixels to ignore, -1 for a value that is no
    class), None for the folder format (a value is its class); ``stamps``: (relative path,
    bytes, mtime in ns) of every file, for the cache's fingerprint."""

    root: Path
    classes: list[str] | None
    pairs: dict[str, list[Pair]]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    stamps: list[tuple[str, int, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lut: tuple[int, ...] | None = None


def is_mask_folder(root: Path) -> bool:
    """Whether ``root`` has the segmentation layout (an images/ and a masks/ folder, at its top
    or in its train/ folder)."""
    return any((base / IMAGES).is_dir() and (base / MASKS).is_dir() for base in (root, root / "train"))


def index_masks(root: Path) -> MaskIndex:
    """Pair the images and masks of segmentation folder ``root`` (no decoding)."""
    if not is_mask_folder(root):
        raise DatasetError(f"{root}: no {IMAGES}/ and {MASKS}/ folders (expected {root}/train/{{images,masks}}/)")
    classes = read_classes(root / CLASSES_FILE)
    split_folders = {s: root / s for s in SPLITS if (root / s / IMAGES).is_dir()} or {"train": root}
    pairs: dict[str, list[Pair]] = {}
    skipped: list[tuple[str, str]] = []
    stamps: list[tuple[str, int, int]] = []
    for split, folder in split_folders.items():
        found = pair_files(root, folder / IMAGES, folder / MASKS)
        pairs[split], stamps = found.pairs, stamps + found.stamps
        skipped += found.skipped
    if not any(pairs.values()):
        raise DatasetError(f"{root}: no image with a mask of the same stem (first unpaired: {_first(skipped)})")
    return MaskIndex(root, classes, pairs, sorted(skipped), sorted(stamps))


@dataclass(frozen=True)
class Found:
    pairs: list[Pair]
    skipped: list[tuple[str, str]]
    stamps: list[tuple[str, int, int]]


def pair_files(root: Path, images: Path, masks: Path, mask_names: str = "{stem}") -> Found:
    """Images of ``images`` paired with the mask of the same stem in ``masks`` (files directly
    inside them, hidden ones left out), sorted by stem; the unpaired files as skipped.
    ``mask_names`` turns an image's stem into its mask's stem."""
    image_files, mask_files = _by_stem(images), _by_stem(masks)
    pairs, skipped = [], []
    for stem, image in sorted(image_files.items()):
        mask = mask_files.pop(mask_names.format(stem=stem), None)
        if mask is None:
            skipped.append((_relative(root, image), f"no mask {mask_names.format(stem=stem)}.* in {masks.name}/"))
            continue
        pairs.append((_relative(root, image), _relative(root, mask)))
    skipped += [(_relative(root, mask), f"no image of this stem in {images.name}/") for mask in mask_files.values()]
    stamps = [
        (_relative(root, Path(p)), *file_stamp(Path(p))) for pair in pairs for p in (root / pair[0], root / pair[1])
    ]
    return Found(pairs, skipped, stamps)


def read_classes(path: Path) -> list[str] | None:
    """Class names, one per line (blank lines and ``#`` comments left out); None without the file."""
    if not path.is_file():
        return None
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    names = [name for name in names if name and not name.startswith("#")]
    if not names:
        raise DatasetError(f"{path}: names no classes (one name per line)")
    if len(names) > MAX_CLASSES:
        raise DatasetError(f"{path}: names {len(names)} classes; at most {MAX_CLASSES} (255 marks ignored pixels)")
    if len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise DatasetError(f"{path}: names class {twice!r} twice")
    return names


def _by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    with os.scandir(folder) as entries:
        files = [Path(e.path) for e in entries if not e.name.startswith(".") and not e.is_dir()]
    return {p.stem: p for p in sorted(files) if is_image_name(p.name)}


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _first(skipped: list[tuple[str, str]]) -> str:
    return f"{skipped[0][0]}: {skipped[0][1]}" if skipped else "none; the folders are empty"
