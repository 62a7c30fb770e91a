"""Unpacking downloaded archives without trusting them.

A tar archive is refused as a whole when any member could land outside the target folder
(an absolute path, a ``..`` step) or is anything but a regular file or a folder (symlinks,
hard links, devices, FIFOs); tarfile's ``data`` filter checks every member again. Only the
expected members are read, each written under its base name, atomically.
"""

from __future__ import annotations

import functools
import gzip
import os
import shutil
import tarfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from dltool._io import atomic_write
from dltool.errors import DatasetError

# What a broken or foreign archive raises while being read.
READ_ERRORS = (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error)


def extract_members(archive: Path, members: Sequence[str], target: Path) -> list[Path]:
    """Write the tar ``members`` of ``archive`` into ``target`` under their base names."""
    try:
        with tarfile.open(archive) as tar:
            found = {_normalised(m.name): m for m in _checked_members(tar, archive, target)}
            written = []
            for name in members:
                member = found.get(name)
                if member is None:
                    raise DatasetError(f"{archive}: has no member {name!r}")
                if not member.isreg():
                    raise DatasetError(f"{archive}: member {name!r} is not a regular file")
                source = tar.extractfile(member)
                assert source is not None  # a regular file always has contents
                output = target / PurePosixPath(name).name
                atomic_write(output, functools.partial(shutil.copyfileobj, source))
                written.append(output)
    except READ_ERRORS as error:
        raise DatasetError(f"{archive}: not a readable tar archive ({error})") from None
    return written


def extract_trees(archive: Path, trees: Sequence[str], target: Path) -> list[Path]:
    """Write every regular file under each folder ``trees`` of ``archive`` into ``target`` /
    the folder's base name, sub-paths kept. Each folder is filled beside its final name and
    renamed into place, so an interrupted unpacking never leaves a partial folder there."""
    if not trees:
        return []
    try:
        with tarfile.open(archive) as tar:
            members = _checked_members(tar, archive, target)
            return [_extract_tree(tar, archive, members, tree, target) for tree in trees]
    except READ_ERRORS as error:
        raise DatasetError(f"{archive}: not a readable tar archive ({error})") from None


def _extract_tree(tar: tarfile.TarFile, archive: Path, members: list[tarfile.TarInfo], tree: str, target: Path) -> Path:
    prefix = _normalised(tree) + "/"
    chosen = [m for m in members if m.isreg() and _normalised(m.name).startswith(prefix)]
    if not chosen:
        raise DatasetError(f"{archive}: has no files under {tree}/")
    final = target / PurePosixPath(tree).name
    building = final.with_name(final.name + ".unpacking")
    shutil.rmtree(building, ignore_errors=True)
    for member in chosen:
        output = building / _normalised(member.name)[len(prefix) :]
        output.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        assert source is not None  # a regular file always has contents
        atomic_write(output, functools.partial(shutil.copyfileobj, source))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(building, final)
    return final


def gunzip(archive: Path, output: Path) -> Path:
    """Decompress the single-file gzip ``archive`` into ``output``, atomically."""
    try:
        with gzip.open(archive, "rb") as source:
            atomic_write(output, lambda file: shutil.copyfileobj(source, file))
    except READ_ERRORS as error:
        raise DatasetError(f"{archive}: not a readable gzip file ({error})") from None
    return output


def _checked_members(tar: tarfile.TarFile, archive: Path, target: Path) -> list[tarfile.TarInfo]:
    members = tar.getmembers()
    for member in members:
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts:
            raise DatasetError(f"{archive}: member {member.name!r} points outside the target folder; refused")
        if not (member.isreg() or member.isdir()):
            raise DatasetError(f"{archive}: member {member.name!r} is a {_kind(member)}; refused")
        try:  # the second layer: the checks Python itself applies with filter="data"
            tarfile.data_filter(member, str(target))
        except tarfile.FilterError as error:
            raise DatasetError(f"{archive}: member {member.name!r} refused ({error})") from None
    return members


def _normalised(name: str) -> str:
    return str(PurePosixPath(name))  # "./a//b" and "a/b" name the same member


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "symbolic link"
    if member.islnk():
        return "hard link"
    if member.ischr() or member.isblk():
        return "device"
    return "FIFO" if member.isfifo() else "special file"
