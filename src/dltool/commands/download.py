"""``dltool download``: fetch, verify and unpack datasets; print each dataset folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dltool.commands import _complete
from dltool.commands._options import Quiet
from dltool.commands._output import emit_line

# Command modules open alike (imports, Opt, a list-of-names argument): one per subcommand.
Opt = typer.Option


def download(
    names: Annotated[
        list[str],
        typer.Argument(
            help="Datasets to download (dltool list datasets).",
            metavar="DATASET",
            autocompletion=_complete.downloadable,
        ),
    ],
    root: Annotated[Path | None, Opt(help="Data root (default: $DLTOOL_DATA, else the user cache).")] = None,
    mirror: Annotated[
        list[str] | None,
        Opt(
            help="Fetch every file as URL/<file name> instead of from the official addresses; "
            "repeat it to try several in order (default: $DLTOOL_MIRROR).",
            metavar="URL",
        ),
    ] = None,
    force: Annotated[bool, Opt("--force", help="Download again even when verified files are present.")] = False,
    quiet: Quiet = False,
) -> None:
    """Download datasets, check them against the publishers' checksums and unpack them.

    Prints each dataset's folder on stdout. Interrupted downloads resume where they stopped.

    Offline: point --mirror at a copy of the files, or put them in ROOT/DATASET/ and rerun.

    $DLTOOL_DOWNLOAD_TIMEOUT: seconds to wait for data before retrying (default 30).

    Example: dltool download mnist cifar10 --root data
    """
    from dltool.commands._download_progress import downloading
    from dltool.data import datasets
    from dltool.data.sources import GENERATED, SOURCES

    for name in names:
        datasets.get(name)  # an unknown name is a usage error before anything is fetched
    with downloading(quiet) as observer:
        for name in names:
            if name not in SOURCES and name not in GENERATED:
                observer.on_message(f"{name} is embedded: nothing to download")
                continue
            emit_line(str(_download(name, root, mirror or None, force, observer)))


def _download(name: str, root: Path | None, mirrors: list[str] | None, force: bool, observer: Any) -> Path:
    from dltool.data.download import download_dataset
    from dltool.data.roots import data_root, writing_into

    with writing_into(data_root(root)):  # a read-only root: one line naming it, not [Errno 30]
        return download_dataset(name, root, mirrors=mirrors, force=force, observer=observer)
