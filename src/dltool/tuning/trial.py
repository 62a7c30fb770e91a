"""One trial: an ordinary run (``dltool.engine.train``) in ``trial-NNNN/`` of the study dir.

The run reports the tuned metric to Optuna after every epoch; the pruner may end it there
(state PRUNED, run status ``interrupted`` with ``stop_reason: pruned``). Its value is the
best epoch's value of the metric. An exception, a non-finite loss or metric, or running out
of memory fails the trial with its error (user attr ``error``), and the study goes on; a
stop request (Ctrl-C) fails it as ``stopped: interrupted``, which does not count towards
the study's trials.
"""

from __future__ import annotations

import contextlib
import math
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


class TrialObserver(Observer):
    """Reports ``metric`` each epoch, asks the pruner, and keeps the best value."""

    def __init__(
        self, trial: Any, metric: str, maximize: bool, epochs: int, on_epoch: Callable[[], None] | None = None
    ) -> None:
        self.trial, self.metric, self.maximize, self.epochs = trial, metric, maximize, epochs
        self.best: float | None = None
        self.pruned = False
        self.notify = on_epoch or (lambda: None)

    def on_epoch(self, record: dict[str, Any]) -> str | None:
        epoch = record["epoch"]
        for key in (*FINITE_KEYS, self.metric):
            value = record.get(key)
            if value is None or not math.isfinite(value):
                raise FloatingPointError(f"{key} is {value} at epoch {epoch}")
        value = float(record[self.metric])
        if self.best is None or (value > self.best if self.maximize else value < self.best):
            self.best = value
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
) -> TrialOutcome:
    """Sample ``trial``'s values, train them into ``study_dir/trial-NNNN``, tell Optuna how it went.

    ``on_progress`` is called once the values are chosen and after each epoch.
    """
    on_progress = on_progress or (lambda: None)
    from optuna.trial import TrialState

    from dltool.engine import train

    try:
        with heartbeat(study, trial):
            config = space.apply(base, space.suggest(trial, base, grid))
            trial.set_user_attr("config", config.to_dict())
            on_progress()
            run = claim_trial_dir(study_dir, trial.number)
            trial.set_user_attr("run_dir", str(run.path.resolve()))
            observer = TrialObserver(trial, metric, maximize, config.train.epochs, on_progress)
            result = train(config, run, observer=observer, stop=stop)
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
    if observer.pruned:
        study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
        return TrialOutcome(trial.number, "PRUNED", observer.best)
    if result.status == "interrupted":
        stop_trial(study, trial, "interrupted")
        return TrialOutcome(trial.number, "FAIL", None, interrupted=True)
    study.tell(trial, observer.best, skip_if_finished=True)
    return TrialOutcome(trial.number, "COMPLETE", observer.best)


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
