"""What ``dltool visualize TARGET...`` draws, from what the targets are."""

from __future__ import annotations

from pathlib import Path

from dltool.errors import UsageError, suggest
from dltool.figures.canvas import Visualization, check_format


def visualize(
    targets: list[str],
    *,
    out: Path | None = None,
    fmt: str = "png",
    split: str | None = None,
    device: str = "auto",
    batch_size: int = 256,
    root: str | None = None,
    augmentations: bool = False,
) -> Visualization:
    """One run dir (holds config.yaml), several run dirs (compared), a study dir (holds
    study.json), else a dataset name or image folder. ``split`` is the scored split of a run
    (default test) or the sampled split of a dataset (default train); ``root`` the data root
    of a dataset. ``augmentations``: only the grid of a run's or a recipe's augmentation."""
    from dltool.rundir import is_run_dir
    from dltool.viz.compare import visualize_runs
    from dltool.viz.dataset import visualize_dataset
    from dltool.viz.run import visualize_run
    from dltool.viz.study import is_study_dir, visualize_study

    check_format(fmt)
    if not targets:
        raise UsageError("give a run dir, several run dirs, a study dir, or a dataset")
    if augmentations:
        return _augmentations(targets, out, fmt, split, root)
    paths = [Path(t).expanduser() for t in targets]
    kinds = ["study" if is_study_dir(p) else "run" if is_run_dir(p) else "other" for p in paths]
    if len(paths) > 1:
        for target, kind in zip(targets, kinds):
            if kind != "run":
                what = "a study dir: visualize it on its own" if kind == "study" else "not a run dir (no config.yaml)"
                raise UsageError(f"{target}: {what}; several targets must all be run dirs")
        _only("--split", split, "several runs")
        _only("--root", root, "several runs")
        return visualize_runs(paths, out=out, fmt=fmt)
    if kinds[0] == "study":
        _only("--split", split, "a study")
        _only("--root", root, "a study")
        return visualize_study(paths[0], out=out, fmt=fmt)
    if kinds[0] == "run":
        _only("--root", root, "a run (its config names its data)")
        return visualize_run(paths[0], out=out, fmt=fmt, split=split or "test", device=device, batch_size=batch_size)
    _check_dataset(targets[0])
    return visualize_dataset(targets[0], out=out, fmt=fmt, split=split or "train", root=root)


def _augmentations(
    targets: list[str], out: Path | None, fmt: str, split: str | None, root: str | None
) -> Visualization:
    from dltool.viz.augmentations import visualize_augmentations

    if len(targets) > 1:
        raise UsageError("--augmentations draws one run dir or recipe at a time")
    _only("--split", split, "--augmentations (it draws training images)")
    _only("--root", root, "--augmentations (the run's or recipe's data.root is used)")
    return visualize_augmentations(targets[0], out=out, fmt=fmt)


def _only(flag: str, value: object, what: str) -> None:
    if value is not None:
        raise UsageError(f"{flag} does not apply to {what}")


def _check_dataset(target: str) -> None:
    from dltool.data import datasets

    if target in datasets or Path(target).expanduser().is_dir():
        return
    if Path(target).expanduser().exists():
        raise UsageError(f"{target}: a file; expected a run dir, a study dir, a dataset name or an image folder")
    raise UsageError(
        f"{target}: no such run dir, study dir, dataset or folder"
        + suggest(target, datasets.names())
        + " (see: dltool list datasets)"
    )
