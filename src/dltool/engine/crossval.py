"""k-fold cross-validation (``dltool train --folds K``, and each trial of ``dltool tune
--folds K``): K runs under one parent folder.

Run k (``fold-1`` … ``fold-K``) trains on every fold of the training pool but the k-th,
validates on it (``data.cv_folds``/``data.cv_fold``, stratified folds drawn with
``data.split_seed``) and is scored on the same held-out test split as the others; every fold
trains with the same ``train.seed``. The parent's ``cv.json`` has each test and val metric's
per-fold values with their mean and (sample) standard deviation.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dltool._io import atomic_write_json
from dltool.config.schema import Config
from dltool.data.prepare import given_splits
from dltool.engine.observer import Observer
from dltool.engine.result import RunResult
from dltool.engine.run import train
from dltool.engine.setup import check_runnable
from dltool.errors import UsageError, option
from dltool.rundir import create_run_dir, cv_record, open_run_dir


@dataclass(frozen=True)
class CrossValidation:
    """The parent folder, each fold's run, and ``cv.json``'s document."""

    path: Path
    runs: list[RunResult]
    document: dict[str, Any]

    @property
    def interrupted(self) -> bool:
        return any(run.status == "interrupted" for run in self.runs)


def cross_validate(
    config: Config,
    source: str,
    folds: int,
    *,
    runs_dir: Path = Path("runs"),
    name: str | None = None,
    observer: Callable[[int], Observer] | None = None,
    stop: threading.Event | None = None,
) -> CrossValidation:
    """Train the ``folds`` runs of ``config`` into ``runs_dir/name`` (else
    ``runs_dir/<source>-cv-<n>``) and write ``cv.json``; stops after a fold that was stopped.
    ``observer(k)`` gives fold k's observer."""
    check_runnable(config)
    check_folds(config, folds)
    parent = create_run_dir(runs_dir, f"{source}-cv", name)
    with parent.discarded_if_unused():  # the first fold stopped before its first file: nothing left
        return train_folds(config, parent.path, folds, observer=observer, stop=stop)


def train_folds(
    config: Config,
    parent: Path,
    folds: int,
    *,
    observer: Callable[[int], Observer] | None = None,
    stop: threading.Event | None = None,
    go_on: Callable[[int, RunResult], bool] | None = None,
) -> CrossValidation:
    """The folds' runs ``parent/fold-1`` … and ``parent/cv.json`` (``parent`` exists, checked
    by ``check_folds``). After fold k's run, ``go_on(k, run)`` may end the series early (a
    pruned trial); a fold that was stopped ends it too."""
    stop = stop or threading.Event()
    runs: list[RunResult] = []
    for fold in range(folds):
        run = create_run_dir(parent, "fold", f"fold-{fold + 1}")
        fold_observer = observer(fold) if observer else Observer()
        with run.discarded_if_unused():  # as a single run's start does (start_run)
            runs.append(train(fold_config(config, folds, fold), run, observer=fold_observer, stop=stop))
        if runs[-1].status == "interrupted" or (go_on is not None and not go_on(fold, runs[-1])):
            break
    document = {"folds": folds, "runs": [str(r.run_dir) for r in runs], "metrics": fold_metrics(runs)}
    atomic_write_json(cv_record(parent), document)
    return CrossValidation(parent, runs, document)


def fold_config(config: Config, folds: int, fold: int) -> Config:
    """The config of fold ``fold``'s run (from 0): it validates on that fold of ``folds``."""
    return config.model_copy(update={"data": config.data.model_copy(update={"cv_folds": folds, "cv_fold": fold})})


def check_folds(config: Config, folds: int) -> None:
    """The usage errors of ``--folds K``, raised before anything is made: K of 2 or more, no
    ``data.cv_folds`` of its own, and a dataset without a val split of its own (the folds are
    drawn from its train split). The dataset is loaded to see its splits, as a run loads it."""
    if folds < 2:
        raise UsageError(f"{option('folds', folds)}: at least 2 (each fold's run validates on one of the K folds)")
    if config.data.cv_folds:
        raise UsageError(
            f"{option('folds', folds)} sets data.cv_folds and data.cv_fold for each fold's run; "
            f"drop data.cv_folds={config.data.cv_folds}"
        )
    if "val" in given_splits(config.data):
        raise UsageError(
            f"{option('folds', folds)}: {config.data.name} has a val split of its own, and k-fold cross-validation "
            f"draws its folds from the train split of a dataset without one: drop {option('folds')}, or use such a dataset"
        )


def fold_metrics(runs: list[RunResult]) -> dict[str, dict[str, Any]]:
    """Every test metric (``test_<name>``) and the best epoch's val metrics of each run, with
    their mean and standard deviation over the runs that have them."""
    values: dict[str, list[float]] = {}
    for run in runs:
        for key, value in _scores(run).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                values.setdefault(key, []).append(float(value))
    return {
        key: {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0, "values": v}
        for key, v in values.items()
    }


def _scores(run: RunResult) -> dict[str, Any]:
    test = {f"test_{k}": v for k, v in (run.test or {}).items() if k != "n"}
    return test | {k: v for k, v in _kept_record(run).items() if k.startswith("val_")}


def _kept_record(run: RunResult) -> dict[str, Any]:
    """The kept epoch's metrics.jsonl record (the weights the test score is of), else the last."""
    best, final = run.best, run.summary.get("final") or {}
    if run.run_dir is None or best is None:
        return final
    records = open_run_dir(run.run_dir).read_metrics()
    return next((r for r in records if r.get("epoch") == best["epoch"]), final)
