"""The image files under a folder, found by the one set of rules that training (a class
folder), stats and predict (a folder named on its command line) share.

By extension, case-insensitive (``IMAGE_EXTENSIONS``); hidden files and folders are left
out (``._IMG_0001.jpg`` resource forks, ``.thumbnails/``), and so are the folders that
NAS boxes and systems keep beside photos (``SYSTEM_FOLDERS``: a Synology's ``@eaDir``
thumbnails, recycle bins) and dltool's own run, study and runs dirs (a runs dir kept
inside a photo folder holds no photos of it). Linked
folders are followed, each real folder once, so a link loop ends, and after every folder
found without a link, so a folder is found at its own path where it has one in the tree.
Each folder's files come in name order, then its sub-folders, each the same way.

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

# Folders that hold no photos of their own: thumbnails and metadata (Synology's @eaDir,
# beside every photo folder), recycle bins and snapshots (Synology, Windows), the system's
# (Windows, ext filesystems), and zip's resource forks of macOS.
SYSTEM_FOLDERS = frozenset(
    {"@eaDir", "#recycle", "#snapshot", "$RECYCLE.BIN", "System Volume Information", "lost+found", "__MACOSX"}
)

Found = tuple[str, os.DirEntry | OSError]  # (path relative to the folder walked, in POSIX form; what is there)


def image_entries(folder: str | Path) -> Iterator[Found]:
    """The image files under ``folder`` (see the module docstring) as (relative path, entry),
    and each sub-folder that cannot be listed as (its relative path, the error)."""
    for relative, listed in _walk(folder):
        if isinstance(listed, OSError):
            yield relative, listed
            continue
        for entry in listed:
            if not _is_folder(entry) and is_image_name(entry.name):
                yield (f"{relative}/{entry.name}" if relative else entry.name), entry


def walked_folders(folder: str | Path) -> Iterator[str]:
    """The relative paths of the folders ``image_entries`` walks under ``folder``: "" (the
    folder itself) first, each real folder once, those that cannot be listed left out."""
    return (relative for relative, listed in _walk(folder) if not isinstance(listed, OSError))


def _walk(folder: str | Path) -> Iterator[tuple[str, list[os.DirEntry] | OSError]]:
    """Each real folder under ``folder`` once, depth first in name order, the folders reached
    through a link after all others: (relative path, its entries by name, or the error listing
    it). So a folder also linked from elsewhere in the tree is found at its own path (a
    ``favourites`` link named before it took its photos). The folder itself must be listable."""
    seen: set[tuple[int, int]] = set()  # folders already walked
    pending: list[tuple[str, str]] = [("", str(folder))]  # (relative path, path) of folders to walk
    linked: list[tuple[str, str]] = []  # those reached through a link, walked once pending is empty
    while pending or linked:
        if not pending:  # every real folder walked: those that links lead to, in the order found
            pending, linked = linked[::-1], []
        relative, directory = pending.pop()
        try:
            info = os.stat(directory)
            if (info.st_dev, info.st_ino) in seen:
                continue
            entries = _listed(directory)
        except OSError as error:
            if not relative:  # the folder itself: nothing to walk
                raise
            yield relative, error
            continue
        seen.add((info.st_dev, info.st_ino))
        yield relative, entries
        folders = [entry for entry in entries if _is_folder(entry) and not is_dltool_output(Path(entry.path))]
        named = [(f"{relative}/{e.name}" if relative else e.name, e.path, e.is_symlink()) for e in folders]
        pending.extend((name, path) for name, path, link in reversed(named) if not link)
        linked.extend((name, path) for name, path, link in named if link)


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def is_left_out(name: str) -> bool:
    """Whether a file or folder of this name is passed over: hidden, or a ``SYSTEM_FOLDERS`` one."""
    return name.startswith(".") or name in SYSTEM_FOLDERS


def _listed(directory: str) -> list[os.DirEntry]:
    """The entries of ``directory`` to look at (``is_left_out`` not), by name."""
    with os.scandir(directory) as entries:
        return sorted((e for e in entries if not is_left_out(e.name)), key=lambda e: e.name)


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a symlink loop: not a folder, and reported as an unreadable file
        return False
