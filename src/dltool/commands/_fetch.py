"""The named dataset a command is about to use, downloaded (or made) first when it is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def fetch_dataset(name: str, root: str | Path | None, quiet: bool) -> None:
    """``dltool.data.fetch.fetch_missing`` with download progress on stderr; the downloader and
    its progress are imported only when there is something to fetch."""
    from dltool.data.fetch import fetch_missing, missing

    if missing(name, root):
        from dltool.commands._download_progress import downloading

        with downloading(quiet) as observer:
            fetch_missing(name, root, observer=observer)


def with_dataset(config: Any, quiet: bool) -> Any:
    """``config``, once its named dataset is here (fetched first when missing). Under torchrun
    every rank asks: the dataset folder's lock lets one fetch while the others wait, and only
    rank 0 shows progress."""
    from dltool.engine.distributed import world_from_env

    fetch_dataset(config.data.name, config.data.root, quiet or not world_from_env().is_main)
    return config
