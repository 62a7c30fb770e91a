"""Image folders as datasets: ``ROOT/<class>/*`` or ``ROOT/{train,val,test}/<class>/*``.

Classes are the sorted sub-folder names of ``train/`` (of ``ROOT`` without splits); a class
may be missing from val/test, but a val/test class unknown to train is an error. Files are
found recursively inside each class folder, by extension (case-insensitive); hidden files
and folders are ignored, and so are dltool's own run, study and runs dirs (a runs dir kept
inside the dataset is never a class). A class folder without image files is left out with
a note. Decoding runs on threads (Pillow releases the GIL) through ``dltool.data.images``;
files that cannot be decoded — and names with an image extension that are no readable
regular file (a FIFO, a symlink loop) — are skipped and listed in the result's
``source.skipped``.

Sizes (every image through the evaluation transform ``fit_image`` with ``crop_pct``) and
channels: see ``dltool.data.folder_decode``.

The decoded arrays are cached once per (folder, image_size, channels, crop_pct) under the data root,
keyed by a fingerprint of the files (relative paths, byte sizes, mtimes) and of the decoder,
so a second run only lists and stats the files; any change rebuilds the cache. The cache is
written as the files are decoded and read back memory-mapped: loading a folder of any size
costs about one decoded image per thread in memory, plus the pages that training touches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dltool._io import sweep_stale_temporaries
from dltool._text import composed
from dltool.data.arrays import ImageArrays
from dltool.data.cache import decoded_fingerprint, fit_cache_name, folder_cache_dir, read_cache
from dltool.data.decoding import Progress
from dltool.data.folder_decode import Fit, decode_folder
from dltool.data.walk import IMAGE_EXTENSIONS, image_entries, is_left_out
from dltool.errors import DatasetError
from dltool.rundir import is_dltool_output

SPLITS = ("train", "val", "test")
# Bump when decoding changes what a cache holds for the same files.
CACHE_FORMAT = "dltool-image-folder/3"  # 3: written row by row, the source report a tensor


@dataclass(frozen=True)
class FolderIndex:
    """The image files of a folder dataset: per split, (relative path, label) in row order;
    ``stamps`` holds (relative path, bytes, mtime in ns) of every file, for the fingerprint."""

    root: Path
    classes: list[str]
    files: dict[str, list[tuple[str, int]]]
    stamps: list[tuple[str, int, int]]
    notes: list[str] = field(default_factory=list)  # what was left out, for the user


def load_folder(
    root: str | Path,
    *,
    cache_root: str | Path | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    workers: int | None = None,
    crop_pct: float | None = 1.0,
    progress: Progress | None = None,
) -> ImageArrays:
    """The folder's splits as uint8 arrays, decoded once and cached under ``cache_root``'s
    data root (see ``dltool.data.roots``), memory-mapped. Raises ``DatasetError`` for a folder
    that is not a dataset (no class folders, no images, an unknown class in val/test).

    ``crop_pct``: of the evaluation transform (``fit_image``); None stretches to the size.
    ``progress(done, total)`` follows the decoding, when there is any."""
    index = index_folder(Path(root))
    key = fingerprint(index, image_size, channels, crop_pct)
    path = cache_path(index.root, cache_root, image_size, channels, crop_pct)
    sweep_stale_temporaries(path.parent)  # what a killed writer left
    if (arrays := read_cache(path, key)) is not None:
        return arrays
    fit = Fit(image_size, channels, crop_pct)
    return decode_folder(index, fit, workers, cache=(path, key), progress=progress)


def index_folder(root: Path) -> FolderIndex:
    """Find the splits, classes and image files of ``root`` (no decoding). A class folder
    with no image files in any split is left out, with a note saying so."""
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    layout = _split_folders(root)
    named = _classes(root, layout)
    _refuse_undecodable(root, named)
    found = {
        split: {name: _image_files(root, path) for name, path in _class_folders(folder, named)}
        for split, folder in layout.items()
    }
    classes = [name for name in named if any(by_class.get(name) for by_class in found.values())]
    files: dict[str, list[tuple[str, int]]] = {}
    stamps: list[tuple[str, int, int]] = []
    for split, by_class in found.items():
        files[split] = [(path, label) for label, name in enumerate(classes) for path, _, _ in by_class.get(name, [])]
        stamps += [stamp for name in classes for stamp in by_class.get(name, [])]
    if not stamps:
        raise DatasetError(
            f"{root}: no image files ({', '.join(sorted(e[1:] for e in IMAGE_EXTENSIONS))}) in its class folders"
        )
    notes = [f"class folder {name!r} has no image files: left out" for name in named if name not in classes]
    return FolderIndex(root, classes, files, stamps, notes)


def _split_folders(root: Path) -> dict[str, Path]:
    names = _sub_folders(root)
    splits = [n for n in SPLITS if n in names]
    if not splits:
        if not names:
            raise DatasetError(
                f"{root}: no class folders; expected {root}/<class>/<image> or {root}/train/<class>/<image>"
            )
        return {"train": root}
    others = [n for n in names if n not in SPLITS]
    if others:
        raise DatasetError(
            f"{root}: has split folders ({', '.join(splits)}) beside other folders ({', '.join(others)}); "
            f"put the class folders inside {'/, '.join(splits)}/"
        )
    return {split: root / split for split in splits}


def _classes(root: Path, layout: dict[str, Path]) -> list[str]:
    if "train" not in layout:
        return sorted({name for folder in layout.values() for name in _sub_folders(folder)})
    classes = _sub_folders(layout["train"])
    if not classes:
        raise DatasetError(f"{layout['train']}: no class folders")
    known = {composed(name) for name in classes}
    for split, folder in layout.items():
        unknown = [name for name in _sub_folders(folder) if composed(name) not in known]
        if unknown:
            raise DatasetError(
                f"{folder / unknown[0]}: class {unknown[0]!r} of the {split} split is not a class of "
                f"{layout['train']} (classes: {', '.join(classes)})"
            )
    return classes


def _refuse_undecodable(root: Path, classes: list[str]) -> None:
    """A class folder's name is its label in classes.json, the rows and the exports, which are
    text: one whose bytes are not UTF-8 (held as surrogates) cannot be written there."""
    for name in classes:
        shown = name.encode("utf-8", "backslashreplace").decode()
        if shown != name:
            raise DatasetError(
                f"class folder '{shown}': its name is not UTF-8 text, and a class's name is its label in "
                f"classes.json, predictions and exports; rename it (Latin-1: convmv -f latin1 -t utf8 -r --notest {root})"
            )


def _class_folders(folder: Path, classes: list[str]) -> list[tuple[str, Path]]:
    """(class, its folder) of the ``classes`` that have one in ``folder``: matched in composed
    form (``composed``), as a val/ copied through a Mac spells "Bären" otherwise than train/."""
    by_name = {composed(name): folder / name for name in _sub_folders(folder)}
    return [(name, by_name[composed(name)]) for name in classes if composed(name) in by_name]


def _sub_folders(folder: Path) -> list[str]:
    """Candidate split or class folders: not hidden nor a system's (``dltool.data.walk``), and
    not a run or runs dir of dltool's."""
    return sorted(
        p.name for p in folder.iterdir() if not is_left_out(p.name) and p.is_dir() and not is_dltool_output(p)
    )


def _image_files(root: Path, folder: Path) -> list[tuple[str, int, int]]:
    """(path relative to ``root`` in POSIX form, bytes, mtime in ns) of the image files under
    ``folder`` (``dltool.data.walk``), sorted."""
    prefix, found = folder.relative_to(root).as_posix(), []
    for relative, entry in image_entries(folder):
        if isinstance(entry, OSError):
            raise DatasetError(f"{folder / relative}: cannot list its files ({entry.strerror or entry})")
        found.append((f"{prefix}/{relative}", *_stamp(entry)))
    return sorted(found)


def _stamp(entry: os.DirEntry) -> tuple[int, int]:
    """(bytes, mtime in ns) of the file, or of the link itself when it leads nowhere."""
    try:
        stat = entry.stat()
    except OSError:
        stat = entry.stat(follow_symlinks=False)
    return stat.st_size, stat.st_mtime_ns


def fingerprint(index: FolderIndex, image_size: int | None, channels: int | None, crop_pct: float | None = 1.0) -> str:
    """Changes whenever a file is added, removed, renamed, rewritten or touched, or the
    requested size, channels or decoder change; the index's classes (an empty class folder
    added or removed changes the labels) and notes (what is said about it) count too."""
    fit = {"image_size": image_size, "channels": channels, "crop_pct": crop_pct}
    return decoded_fingerprint(CACHE_FORMAT, fit, index)


def cache_path(
    root: Path,
    cache_root: str | Path | None,
    image_size: int | None,
    channels: int | None,
    crop_pct: float | None = 1.0,
) -> Path:
    """One cache file per folder (by absolute path), size, channel count and crop."""
    return folder_cache_dir(root, cache_root) / fit_cache_name("", image_size, channels, crop_pct)
