"""What ``dltool visualize TARGET...`` draws, from what the targets are."""

from __future__ import annotations

from pathlib import Path

from dltool.errors import UsageError, option, similar_paths, suggest
from dltool.figures.canvas import Visualization, check_format


def visualize(
    targets: list[str],
    *,
    out: Path | None = None,
    fmt: str = "png",
    split: str | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    root: str | None = None,
    augmentations: bool = False,
    feature_maps: str | None = None,
    image: Path | None = None,
) -> Visualization:
    """One run dir (holds config.yaml), several run dirs (compared), a study dir (holds
    study.json), else a dataset name or image folder. ``split`` is the scored split of a run
    (default test) or the sampled split of a dataset (default train); ``root`` the data root
    of a dataset. ``augmentations``: only the grid of a run's or a recipe's augmentation;
    ``feature_maps`` (a layer name) with ``image``: only what that layer of a run outputs for it."""
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
    if feature_maps is not None or image is not None:
        return _feature_maps(targets, feature_maps, image, out, fmt, device, (split, root))
    paths = [Path(t).expanduser() for t in targets]
    kinds = ["study" if is_study_dir(p) else "run" if is_run_dir(p) else "other" for p in paths]
    if len(paths) > 1:
        for target, kind in zip(targets, kinds):
            if kind != "run":
                what = "a study dir: visualize it on its own" if kind == "study" else "not a run dir (no config.yaml)"
                raise UsageError(f"{target}: {what}; several targets must all be run dirs")
        _only("split", split, "several runs")
        _only("root", root, "several runs")
        return visualize_runs(paths, out=out, fmt=fmt)
    if kinds[0] == "study":
        _only("split", split, "a study")
        _only("root", root, "a study")
        return visualize_study(paths[0], out=out, fmt=fmt)
    if kinds[0] == "run":
        _only("root", root, "a run (its config names its data)")
        return visualize_run(paths[0], out=out, fmt=fmt, split=split or "test", device=device, batch_size=batch_size)
    _check_dataset(targets[0])
    return visualize_dataset(targets[0], out=out, fmt=fmt, split=split or "train", root=root)


def _augmentations(
    targets: list[str], out: Path | None, fmt: str, split: str | None, root: str | None
) -> Visualization:
    from dltool.viz.augmentations import visualize_augmentations

    if len(targets) > 1:
        raise UsageError(f"{option('augmentations', True)} draws one run dir or recipe at a time")
    _only("split", split, f"{option('augmentations', True)} (it draws training images)")
    _only("root", root, f"{option('augmentations', True)} (the run's or recipe's data.root is used)")
    return visualize_augmentations(targets[0], out=out, fmt=fmt)


def _feature_maps(
    targets: list[str],
    layer: str | None,
    image: Path | None,
    out: Path | None,
    fmt: str,
    device: str,
    unused: tuple[str | None, str | None],
) -> Visualization:
    from dltool.rundir import is_run_dir
    from dltool.viz.inside import visualize_feature_maps

    if layer is None or image is None:
        together = f"{option('feature_maps', 'LAYER', 'feature_maps')} and {option('image', 'FILE', 'image')}"
        raise UsageError(f"{together} go together: the layer's output for that image")
    if len(targets) > 1 or not is_run_dir(Path(targets[0]).expanduser()):
        raise UsageError(
            f"{option('feature_maps', python='feature_maps')} draws one run dir's layer (give one run dir)"
        )
    drawn = f"{option('feature_maps', python='feature_maps')} (it draws the {option('image', python='image')})"
    _only("split", unused[0], drawn)
    _only("root", unused[1], drawn)
    if not Path(image).expanduser().is_file():  # a typo is the user's to mend: before the model loads
        raise UsageError(f"{option('image', str(image))}: no such file")
    return visualize_feature_maps(Path(targets[0]).expanduser(), layer, Path(image), out=out, fmt=fmt, device=device)


def _only(keyword: str, value: object, what: str) -> None:
    if value is not None:
        raise UsageError(f"{option(keyword)} does not apply to {what}")


def _check_dataset(target: str) -> None:
    from dltool.data import datasets
    from dltool.rundir import refuse_parent_of_runs

    refuse_parent_of_runs(Path(target).expanduser())  # a cross-validation's folder is no image folder
    if target in datasets or Path(target).expanduser().is_dir():
        return
    if Path(target).expanduser().exists():
        raise UsageError(f"{target}: a file; expected a run dir, a study dir, a dataset name or an image folder")
    beside = similar_paths(Path(target).expanduser())  # a typo'd run name, before the dataset names
    raise UsageError(
        f"{target}: no such run dir, study dir, dataset or folder"
        + (beside or suggest(target, datasets.names()))
        + " (see: dltool list datasets)"
    )
