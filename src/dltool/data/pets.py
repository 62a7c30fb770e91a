"""The Oxford-IIIT Pet dataset's trimaps: 7,349 photos of cats and dogs (37 breeds), each with
a map of its pixels: pet, background, or the border between them.

Published as ``images.tar.gz`` (``images/<Breed>_<n>.jpg``) and ``annotations.tar.gz``
(``annotations/trimaps/<Breed>_<n>.png``, values 1 pet, 2 background, 3 border; and the
official split, ``annotations/trainval.txt`` and ``test.txt``: one ``<name> <class> <species>
<breed>`` line per photo). Classes here: background (0), pet (1), border (2). The photos vary
in size: ``data.image_size`` resizes them (masks by nearest neighbour); decoded once and
cached beside the files.
"""

from __future__ import annotations

from pathlib import Path

from dltool._io import file_stamp
from dltool.data.arrays import ImageArrays
from dltool.data.cache import cached
from dltool.data.mask_decode import decode_masks, fingerprint
from dltool.data.masks import MaskIndex
from dltool.data.sources import downloaded_files
from dltool.errors import DatasetError

NAME = "oxford-pets"
CLASSES = ["background", "pet", "border"]
# Trimap value -> class index: 1 pet, 2 background, 3 border; any other value is no class.
LUT = tuple({1: 1, 2: 0, 3: 2}.get(value, -1) for value in range(256))
SPLIT_FILES = {"train": "trainval.txt", "test": "test.txt"}


def load_pets(
    root: str | Path | None = None, image_size: int | None = None, channels: int | None = None
) -> ImageArrays:
    """The trainval (as train) and test photos with their trimaps (``dltool download oxford-pets`` first)."""
    files = downloaded_files(NAME, root)
    index = pets_index(files.folder)
    path = files.folder / f"{NAME}-{image_size or 'auto'}-{channels or 3}.safetensors"
    return cached(path, fingerprint(index, image_size, channels), lambda: decode_masks(index, image_size, channels))


def pets_index(folder: Path) -> MaskIndex:
    """The photos of the official split lists paired with their trimaps; a listed name without
    its photo or trimap is skipped and named."""
    pairs: dict[str, list[tuple[str, str]]] = {}
    skipped: list[tuple[str, str]] = []
    for split, list_file in SPLIT_FILES.items():
        pairs[split] = []
        for name in listed_names(folder / list_file):
            image, trimap = f"images/{name}.jpg", f"trimaps/{name}.png"
            missing = [path for path in (image, trimap) if not (folder / path).is_file()]
            if missing:
                skipped.append((image, f"listed in {list_file}, but {missing[0]} is missing"))
            else:
                pairs[split].append((image, trimap))
    stamps = [(path, *file_stamp(folder / path)) for rows in pairs.values() for pair in rows for path in pair]
    return MaskIndex(folder, list(CLASSES), pairs, skipped, stamps, lut=LUT)


def listed_names(path: Path) -> list[str]:
    """The photo names of a split list (first word of each line; ``#`` comments left out)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read the split list ({error})") from None
    return [line.split()[0] for line in lines if line.strip() and not line.startswith("#")]
