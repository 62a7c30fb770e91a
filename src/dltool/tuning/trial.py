"""One trial: an ordinary run (``dltool.engine.train``) in ``trial-NNNN/`` of the study dir.

The run reports the tuned metric to Optuna after every epoch; the pruner may end it there
(state PRUNED, run status ``interrupted`` with ``stop_reason: pruned``). Its value is the
best epoch's value of the metric. A study with ``folds`` scores each trial by k-fold
cross-validation instead (``tuning.folds``). An exception, a non-finite loss or metric, or running out
of memory fails the trial with its error (user attr ``error``), and the study goes on; a
stop request (Ctrl-C) fails it as ``stopped: interrupted``, which does not count towards
the study's trials.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dltool.engine.observer import Observer
from dltool.errors import StorageError, UsageError
from dltool.rundir import RunDir, create_run_dir
from dltool.tuning.liveness import heartbeat
from dltool.tuning.space import SearchSpace
from dltool.tuning.storage import RESTART_HINT

FINITE_KEYS = ("train_loss", "val_loss")
TRIAL_DIR = "trial-{number:04d}"


class TrialDirExists(StorageError):
    """A new trial's run dir exists already: the storage lost trials that the study dir records."""


@dataclass(frozen=True)
class TrialOutcome:
    number: int
    state: str  # COMPLETE | PRUNED | FAIL
    value: float | None
    interrupted: bool = False


@dataclass(frozen=True)
class Score:
    """How a trial's training went: its value (the best seen), and whether it was pruned or stopped."""

    value: float | None
    pruned: bool
    interrupted: bool


class TrialObserver(Observer):
    """Keeps the best value of ``metric``; with ``prune``, reports it each epoch and asks the pruner."""

    def __init__(
        self,
        trial: Any,
        metric: str,
        maximize: bool,
        epochs: int,
        on_epoch: Callable[[], None] | None = None,
        *,
        prune: bool = True,
    ) -> None:
        self.trial, self.metric, self.maximize, self.epochs = trial, metric, maximize, epochs
        self.best: float | None = None
        self.pruned = False
        self.notify = on_epoch or (lambda: None)
        self.prune = prune

    def on_epoch(self, record: dict[str, Any]) -> str | None:
        epoch = record["epoch"]
        for key in (*FINITE_KEYS, self.metric):
            value = record.get(key)
            if value is None or not math.isfinite(value):
                raise FloatingPointError(f"{key} is {value} at epoch {epoch}")
        value = float(record[self.metric])
        if self.best is None or (value > self.best if self.maximize else value < self.best):
            self.best = value
        if not self.prune:
            self.notify()
            return None
        self.trial.report(value, epoch)
        self.notify()
        # After the last epoch the run is complete whatever the pruner thinks.
        if epoch < self.epochs and self.trial.should_prune():
            self.pruned = True
            return "pruned"
        return None


def run_trial(
    study: Any,
    trial: Any,
    *,
    space: SearchSpace,
    base: dict[str, Any],
    grid: bool,
    study_dir: Path,
    metric: str,
    maximize: bool,
    stop: threading.Event,
    on_progress: Callable[[], None] | None = None,
    folds: int = 0,
) -> TrialOutcome:
    """Sample ``trial``'s values, train them into ``study_dir/trial-NNNN`` (with ``folds``, its
    ``fold-1`` … runs), tell Optuna how it went.

    ``on_progress`` is called once the values are chosen and the run dir made, and after each epoch.
    """
    on_progress = on_progress or (lambda: None)
    from optuna.trial import TrialState

    try:
        with heartbeat(study, trial):
            config = space.apply(base, space.suggest(trial, base, grid))
            trial.set_user_attr("config", config.to_dict())
            run = claim_trial_dir(study_dir, trial.number)
            # Set once every value is chosen: watchers show a trial as started from then on.
            trial.set_user_attr("run_dir", str(run.path.resolve()))
            on_progress()
            observer = TrialObserver(trial, metric, maximize, config.train.epochs, on_progress)
            if folds:
                score = _score_folds(trial, config, run.path, folds, observer, stop)
            else:
                score = _score(config, run, observer, stop)
    except KeyboardInterrupt:  # a second Ctrl-C: the run stopped at once
        stop_trial(study, trial, "interrupted")
        raise
    except TrialDirExists:  # not this trial's failure: the study must stop
        stop_trial(study, trial, "not run: its run dir exists already")
        raise
    except Exception as error:
        trial.set_user_attr("error", f"{type(error).__name__}: {error}".strip())
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        _free_accelerator_memory()
        return TrialOutcome(trial.number, "FAIL", None)
    return _tell(study, trial, score)


def _tell(study: Any, trial: Any, score: Score) -> TrialOutcome:
    """Tell Optuna how a trial that trained went: pruned, stopped, or complete with its value."""
    from optuna.trial import TrialState

    if score.pruned:
        study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
        return TrialOutcome(trial.number, "PRUNED", score.value)
    if score.interrupted:
        stop_trial(study, trial, "interrupted")
        return TrialOutcome(trial.number, "FAIL", None, interrupted=True)
    study.tell(trial, score.value, skip_if_finished=True)
    return TrialOutcome(trial.number, "COMPLETE", score.value)


def _score(config: Any, run: RunDir, observer: TrialObserver, stop: threading.Event) -> Score:
    """One run, reporting each epoch to the pruner."""
    from dltool.engine import train

    result = train(config, run, observer=observer, stop=stop)
    return Score(observer.best, observer.pruned, result.status == "interrupted")


def _score_folds(
    trial: Any, config: Any, parent: Path, folds: int, like: TrialObserver, stop: threading.Event
) -> Score:
    """k-fold cross-validation (``engine.crossval``): fold k's run in ``parent/fold-k``, and
    ``parent/cv.json``. The value is the mean over the folds of each run's best value (user
    attr ``fold_values``: each fold's). The pruner is asked between folds, not within one:
    after fold k the running mean of folds 1 to k is reported as step k, so trials are
    compared fold for fold (a fold's epochs are not reported: they are another resource)."""
    from dltool.engine.crossval import train_folds

    observers: list[TrialObserver] = []
    values: list[float] = []
    pruned = False

    def observer(fold: int) -> TrialObserver:
        observers.append(TrialObserver(trial, like.metric, like.maximize, like.epochs, like.notify, prune=False))
        return observers[-1]

    def go_on(fold: int, run: Any) -> bool:
        nonlocal pruned
        best = observers[fold].best
        assert best is not None  # a fold's run that was not stopped reported its epochs
        values.append(best)
        trial.set_user_attr("fold_values", values)
        trial.report(statistics.fmean(values), fold + 1)
        like.notify()
        pruned = fold + 1 < folds and trial.should_prune()
        return not pruned

    trial.set_user_attr("folds", folds)
    result = train_folds(config, parent, folds, observer=observer, stop=stop, go_on=go_on)
    return Score(statistics.fmean(values) if values else None, pruned, result.interrupted)


def claim_trial_dir(study_dir: Path, number: int) -> RunDir:
    """Trial ``number``'s run dir, made by an exclusive ``mkdir``: never one that exists."""
    name = TRIAL_DIR.format(number=number)
    try:
        return create_run_dir(study_dir, "trial", name)
    except UsageError:  # the name is a valid one, so the dir exists already
        raise TrialDirExists(
            f"{study_dir / name} exists already, but the study's storage has trial {number} as a new one: "
            f"the storage lost trials that this study dir records; restore it, {RESTART_HINT}"
        ) from None


def stop_trial(study: Any, trial: Any, reason: str) -> None:
    """Fail ``trial`` as stopped (user attr ``stopped``): it does not count towards the budget."""
    from optuna.trial import TrialState

    with contextlib.suppress(Exception):
        trial.set_user_attr("stopped", reason)
    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)


def _free_accelerator_memory() -> None:
    """After an out-of-memory failure the next trial should start from an empty cache."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
