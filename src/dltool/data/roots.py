"""Where datasets and their caches live: --root, else $DLTOOL_DATA, else the user cache."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import platformdirs

from dltool._io import raise_if_disk_full
from dltool.errors import DatasetError, nearest_folder

# The errors of a folder that takes no writes: a read-only filesystem, or no permission.
READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}


def data_root(root: str | Path | None = None) -> Path:
    if root is not None:
        return Path(root).expanduser()
    if env := os.environ.get("DLTOOL_DATA"):
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("dltool")) / "data"


@contextmanager
def writing_into(root: Path) -> Iterator[None]:
    """A write refused under data root ``root`` (``READ_ONLY``) as one ``DatasetError`` that
    names the folder refused and where to download instead; a full disk as ``DiskFullError``."""
    try:
        yield
    except OSError as error:
        raise_if_disk_full(error, Path(error.filename or root))
        if error.errno not in READ_ONLY:
            raise
        raise DatasetError(
            f"{nearest_folder(Path(error.filename or root))}: cannot write there ({os.strerror(error.errno).lower()}); "
            "choose a data root you can write with --root DIR (or $DLTOOL_DATA)"
        ) from None
