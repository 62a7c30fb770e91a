"""The image files under a folder, found by the one set of rules that training (a class
folder), stats and predict (a folder named on its command line) share.

By extension, case-insensitive (``IMAGE_EXTENSIONS``); hidden files and folders are left
out (``._IMG_0001.jpg`` resource forks, ``.thumbnails/``), and so are dltool's own run,
study and runs dirs (a runs dir kept inside a photo folder holds no photos of it). Linked
folders are followed, each real folder once, so a link loop ends. Each folder's files come
in name order, then its sub-folders, each the same way.

A name with an image extension that is no readable file (a FIFO, a link loop) is found all
the same: decoding names it as skipped. A sub-folder that cannot be listed is found as an
``OSError``: the caller says what it means (training fails on it, predict skips it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from dltool.rundir import is_dltool_output

# What Pillow reads (AVIF since Pillow 11.3; HEIC/HEIF with the heif extra's pillow-heif, else
# each is skipped with the line that installs it).
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".avif", ".heic", ".heif"}
)

Found = tuple[str, os.DirEntry | OSError]  # (path relative to the folder walked, in POSIX form; what is there)


def image_entries(folder: str | Path) -> Iterator[Found]:
    """The image files under ``folder`` (see the module docstring) as (relative path, entry),
    and each sub-folder that cannot be listed as (its relative path, the error)."""
    seen: set[tuple[int, int]] = set()  # folders already walked
    pending = [("", str(folder))]
    while pending:
        relative, directory = pending.pop()
        try:
            info = os.stat(directory)
            entries = [] if (info.st_dev, info.st_ino) in seen else _listed(directory)
        except OSError as error:
            if not relative:  # the folder itself: nothing to walk
                raise
            yield relative, error
            continue
        seen.add((info.st_dev, info.st_ino))
        folders = []
        for entry in entries:
            path = f"{relative}/{entry.name}" if relative else entry.name
            if _is_folder(entry):
                if not is_dltool_output(Path(entry.path)):
                    folders.append((path, entry.path))
            elif is_image_name(entry.name):
                yield path, entry
        pending.extend(reversed(folders))


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _listed(directory: str) -> list[os.DirEntry]:
    """The entries of ``directory`` to look at (not hidden), by name."""
    with os.scandir(directory) as entries:
        return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a symlink loop: not a folder, and reported as an unreadable file
        return False
