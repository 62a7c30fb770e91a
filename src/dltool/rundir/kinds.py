"""What a folder is to dltool: a run dir to open, or another of the folders it writes (a
study dir, a cross-validation's folds, a runs dir, a folder of figures), which commands that
want one run refuse by name, and image folders and predict's walks leave out."""

from __future__ import annotations

import os
import re
from pathlib import Path

from dltool.errors import CheckpointError, MissingPathError, UsageError, option
from dltool.rundir.layout import BEST, CV, LOCK, STUDY, RunDir, holds_only_lock, read_json_object

PLOTS = ".dltool-plots"  # the mark of a folder that dltool visualize made for its figures


def is_dltool_output(folder: Path) -> bool:
    """Whether ``folder`` is one that dltool writes: a run dir (config.yaml beside
    metrics.jsonl or summary.json, or a training lock), a tune study dir (study.json), a
    folder of ``visualize``'s figures, or a folder (runs/, plots/) that holds only those. Image-folder datasets leave these out, so a runs dir
    kept inside a dataset never becomes a class (nor its plots training images)."""
    if _is_own(folder):
        return True
    try:
        children = [folder / name for name in os.listdir(folder) if not name.startswith(".")]
    except OSError:
        return False
    return bool(children) and all(child.is_dir() and _is_own(child) for child in children)


def make_plots_folder(folder: Path) -> None:
    """``folder`` for figures, marked as dltool's (``PLOTS``) if this makes it, so that image
    folders and predict leave it out; one that was there (``--out photos/cat``) stays unmarked."""
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        return
    (folder / PLOTS).touch()


def _is_own(folder: Path) -> bool:
    """A run or study dir, or a folder of figures that ``dltool visualize`` made (marked
    ``PLOTS``): ``cd photos && dltool visualize .`` made ``plots/dataset/``, a class of the
    next run whose images were dltool's own figures."""
    return _is_run_or_study(folder) or (folder / PLOTS).is_file()


def _is_run_or_study(folder: Path) -> bool:
    try:
        names = set(os.listdir(folder))
    except OSError:
        return False
    if names & {LOCK, STUDY, CV}:
        return True
    run = RunDir(folder)
    return run.config.name in names and bool(names & {run.metrics.name, run.summary.name, run.lr_curve.name})


def runs_named_after(config_file: Path) -> str:
    """What runs trained from ``config_file`` are named after: a run's config.yaml, that run
    (runs/digits-mlp-3 → digits-mlp-<n>); a study's best.yaml, the study
    (runs/digits-mlp-tune-2 → digits-mlp-tune-2-best-<n>); any other file, its stem."""
    folder = Path(config_file).resolve().parent
    if config_file.name == RunDir(folder).config.name:
        return re.sub(r"-\d+$", "", folder.name)
    return f"{folder.name}-best" if config_file.name == BEST and (folder / STUDY).is_file() else config_file.stem


def refuse_parent_of_runs(path: Path) -> None:
    """A tune study dir, a cross-validation's parent folder or a runs dir, named where one run
    goes, is a usage error naming a run inside it (it held no config.yaml: "no weights", "no images")."""
    if (path / STUDY).is_file():
        raise UsageError(
            f"{path} is a tune study dir, not a run: name one of its trials, e.g. {path / _best_trial(path)}"
        )
    if (path / CV).is_file():
        raise UsageError(
            f"{path} holds the fold runs of a cross-validation, not one run: name one, e.g. {path / 'fold-1'}"
        )
    if not _is_run_or_study(path) and is_dltool_output(path):
        runs = sorted(
            (run for run in path.iterdir() if not run.name.startswith(".")),
            key=lambda run: (RunDir(run).weights.is_file(), run.stat().st_mtime),  # a --find-lr dir has none
        )
        raise UsageError(f"{path} is a folder of runs, not one run: name one, e.g. {runs[-1]} (the newest)")


def _best_trial(study_dir: Path) -> str:
    try:
        best = (read_json_object(study_dir / STUDY) or {}).get("best") or {}
    except CheckpointError:
        best = {}
    return str(best.get("run_dir") or "trial-0000")


def open_run_dir(path: Path) -> RunDir:
    """An existing run directory, checked to hold a config."""
    run = RunDir(Path(path))
    if not run.path.exists():
        raise MissingPathError(path, "run directory")
    if not run.config.is_file():
        refuse_parent_of_runs(run.path)
        if holds_only_lock(run.path):
            raise CheckpointError(
                f"{path}: its training was stopped during setup, before its first file: nothing to resume;"
                f" train again with {option('name', run.path.name)} (the folder is reused)"
            )
        raise CheckpointError(f"{path}: not a dltool run directory (no config.yaml)")
    return run
