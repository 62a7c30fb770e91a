"""What a running study tells its caller: ``TuneObserver`` (the CLI renders it on stderr)."""

from __future__ import annotations

from dataclasses import dataclass

from dltool.tuning.study import TrialRow


@dataclass(frozen=True)
class StudyStart:
    """Once, when a session of a study starts."""

    study_dir: str
    study_name: str
    storage: str  # without its password
    dashboard: str  # the command that opens the study in optuna-dashboard
    n_trials: int
    counted: int  # trials of earlier sessions that count towards n_trials
    sampler: str
    pruner: str
    metric: str
    direction: str
    workers: int
    folds: int = 0  # each trial's value: the mean over this many folds' runs (0: one run)


class TuneObserver:
    """No-op base: the CLI renders these on stderr."""

    def on_start(self, start: StudyStart) -> None:
        """Once: where the study is, its settings, and the trials counted so far."""

    def on_trials(self, rows: list[TrialRow]) -> None:
        """Whenever a trial starts, reports an epoch or ends: every trial of the study."""

    def on_message(self, text: str) -> None:
        """A line for the user."""
