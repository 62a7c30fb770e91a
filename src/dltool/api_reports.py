"""dltool from Python, continued: ``stats_of``, ``summary`` and ``visualize``, returning what
the commands ``stats``, ``summary`` and ``visualize`` show (``from dltool import stats_of,
summary, visualize``). ``stats_of`` is named so beside the ``dltool.stats`` module.

As in ``dltool.api``: nothing is printed, bad input raises a ``dltool.errors.DltoolError``
subclass naming these functions' keywords, and torch is imported on first use.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dltool.api import at_least
from dltool.errors import DltoolError, UsageError, option

if TYPE_CHECKING:
    from dltool.figures.canvas import Visualization
    from dltool.models.summary import ModelSummary

__all__ = ["stats_of", "summary", "visualize"]

StrPath = str | os.PathLike[str]


def stats_of(target: StrPath, *, split: str | None = None, root: StrPath | None = None) -> dict[str, Any]:
    """What a dataset (a name or an image folder), a run dir or a checkpoint holds, as
    ``dltool stats --json`` prints it: ``kind`` (``dataset``, ``run`` or ``checkpoint``) and its
    keys — a dataset's ``splits``, ``sizes``, ``mean`` and ``std``, ``imbalance``,
    ``duplicates``, ...; a run's ``status``, ``best``, ``test``, ...; a checkpoint's model,
    parameters and classes. ``split``: only that split of a dataset; ``root``: its data root
    (``data.root``). A named dataset not downloaded yet is downloaded first (silently; not with
    ``$DLTOOL_OFFLINE``)."""
    from dltool.stats import stats as gather

    return gather(os.fspath(target), split, root=None if root is None else os.fspath(root))


def summary(target: StrPath, *, depth: int = 3, root: StrPath | None = None) -> ModelSummary:
    """A model's layers, output shapes, parameters and multiply-accumulates, as ``dltool
    summary`` shows them: of a recipe, config file, run dir or weights (``model.safetensors``,
    ``last.pt``). ``layers`` goes ``depth`` levels deep (1: top level); ``total_params``,
    ``trainable_params`` and ``macs`` cover the whole network; ``to_dict()`` is ``--json``'s
    document. ``root``: the data root of a recipe's or config's dataset (``data.root``)."""
    from dltool.evaluation.summary import summarize_target

    at_least(1, depth=depth)
    refuse_export(Path(target))
    return summarize_target(os.fspath(target), depth=depth, root=None if root is None else os.fspath(root))


def refuse_export(target: Path) -> None:
    """A usage error for an exported model (its graph has no layers to list), naming the
    weights it was exported from, which summary takes."""
    from dltool.export.exported import is_export, read_sidecar

    if not is_export(target) or not target.is_file():  # a missing file is named as such further on
        return
    source = _export_source(target, read_sidecar)
    weights = f": {option('summary', source, python=f'dltool.summary({source!r})')}, the weights it was exported from"
    raise UsageError(
        f"{target} is an exported model; summary lists a recipe's, config's, run's or checkpoint's layers"
        + (weights if source else "")
    )


def _export_source(target: Path, read_sidecar: Any) -> str | None:
    """The weights the sidecar names, where they still are."""
    try:
        source = read_sidecar(target).source
    except DltoolError:
        return None
    return source if source and Path(source).is_file() else None


def visualize(
    targets: StrPath | Iterable[StrPath],
    *,
    out: StrPath | None = None,
    image_format: Literal["png", "svg", "pdf"] = "png",
    split: str | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    root: StrPath | None = None,
    augmentations: bool = False,
    feature_maps: str | None = None,
    image: StrPath | None = None,
) -> Visualization:
    """Plots and a self-contained ``report.html``, as ``dltool visualize`` draws them, of one
    run dir, several run dirs (compared), a study dir or a dataset (a name or an image folder):
    ``targets`` is one or a list. ``out``: the folder (by default the run's or study's
    ``plots/``); ``split``: a run's scored split (test) or a dataset's sampled one (train);
    ``augmentations``: only the grid of a run's or recipe's augmentation; ``feature_maps`` (a
    layer name) with ``image``: only what that layer outputs for it. The result names the files
    ``written`` (``report.html`` last) and ``notes`` on what could not be drawn."""
    from dltool.viz import visualize as draw

    at_least(1, batch_size=batch_size)
    return draw(
        [os.fspath(targets)] if isinstance(targets, (str, os.PathLike)) else [os.fspath(t) for t in targets],
        out=None if out is None else Path(out),
        fmt=image_format,
        split=split,
        device=device,
        batch_size=batch_size,
        root=None if root is None else os.fspath(root),
        augmentations=augmentations,
        feature_maps=feature_maps,
        image=None if image is None else Path(image),
    )
