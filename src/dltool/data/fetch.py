"""A named dataset that a run needs and this machine lacks, fetched as `dltool download` would.

`dltool train cifar10-mlp` on a fresh machine downloads CIFAR-10 first, as torchvision's
``download=True`` and Ultralytics do, rather than stopping to ask for a second command; a
generated dataset (``shapes-seg``) is made. Loaders still never touch the network: this runs
before them, in the commands (and the Python API) that start work. ``$DLTOOL_OFFLINE`` keeps
a missing download an error that names the command to run elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dltool._env import env_flag
from dltool.data.roots import data_root, writing_into
from dltool.data.sources import GENERATED, SIZES, require_downloaded
from dltool.errors import DatasetError

if TYPE_CHECKING:  # the downloader (urllib, filelock) is imported only when something is fetched
    from dltool.data.download import DownloadObserver


def missing(name: str, root: str | Path | None = None) -> bool:
    """Whether ``name`` is a downloadable or generated dataset not yet under the data root."""
    try:
        require_downloaded(name, root)
    except DatasetError:
        return True
    return False


def fetch_missing(
    name: str, root: str | Path | None = None, *, observer: DownloadObserver | None = None
) -> Path | None:
    """Download (or make) dataset ``name`` when it is ``missing``; its folder, or None when
    there was nothing to fetch. Offline (``$DLTOOL_OFFLINE``), a download is the DatasetError
    that names `dltool download`."""
    try:
        require_downloaded(name, root)
        return None
    except DatasetError as error:
        if name not in GENERATED and env_flag("DLTOOL_OFFLINE"):
            raise DatasetError(f"{error}; $DLTOOL_OFFLINE is set, so it is not downloaded now") from None
    from dltool.data.download import DownloadObserver, download_dataset

    observer = observer or DownloadObserver()
    observer.on_message(_fetching_line(name, root))
    with writing_into(data_root(root)):
        return download_dataset(name, root, observer=observer)


def _fetching_line(name: str, root: str | Path | None) -> str:
    if name in GENERATED:
        return f"{name} is not in {data_root(root)} yet: making it (no download)"
    size = sum(SIZES.get(name, {}).values())
    return f"{name} is not in {data_root(root)} yet: downloading it" + (f" ({size / 1e6:,.0f} MB)" if size else "")
