"""Run a prepared study until ``n_trials`` have finished, in this process or in K local
worker processes (``tuning.pool``).

Counting: a trial counts towards ``n_trials`` once it finished on its own — COMPLETE,
PRUNED, or FAIL with its own error. A trial failed because its worker was stopped (Ctrl-C),
lost (killed, a dead node) or not needed (a race between machines) is recorded but does not
count, so running the same command again completes the study.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dltool.tuning._optuna import quiet_optuna
from dltool.tuning.pool import supervise
from dltool.tuning.progress import StudyStart, TuneObserver
from dltool.tuning.records import StudyRecord
from dltool.tuning.settings import TuneSettings
from dltool.tuning.storage import dashboard_command, public_url, storage_errors
from dltool.tuning.study import TRIALS_CSV, counts, write_outputs
from dltool.tuning.worker import load_study, run_worker

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class TuneResult:
    study_dir: Path
    record: StudyRecord  # study.json as written at the end
    interrupted: bool

    @property
    def study(self) -> dict[str, Any]:
        """The study.json document."""
        return self.record.to_dict()

    @property
    def best(self) -> dict[str, Any] | None:
        """The best trial: ``{number, value, params, run_dir}`` (None before one completes)."""
        return self.study["best"]

    @property
    def trials(self) -> pd.DataFrame:
        """``trials.csv`` as a DataFrame, one row per trial (number, state, params, value, ...)."""
        import pandas as pd

        return pd.read_csv(self.study_dir / TRIALS_CSV)


def tune(
    settings: TuneSettings,
    *,
    workers: int = 1,
    observer: TuneObserver | None = None,
    stop: threading.Event | None = None,
) -> TuneResult:
    """Run trials until ``settings.n_trials`` have finished (counting those of earlier sessions).

    With ``workers`` > 1, that many worker processes share the storage and this process only
    watches. Setting ``stop`` ends the running trials (marked failed, not counted) and returns.
    """
    observer = observer or TuneObserver()
    stop = stop or threading.Event()
    settings, parent_run = _with_parent_run(settings)
    with quiet_optuna(), storage_errors(settings.storage, settings.study_dir):  # the library prints nothing
        study = load_study(settings)
        observer.on_start(_start(settings, study, workers))
        for note in settings.notes:
            observer.on_message(note)
        try:
            if workers == 1:
                run_worker(settings, stop=stop, observer=observer)
            else:
                supervise(settings, workers, observer, stop)
        finally:
            record = write_outputs(study, settings)
    if parent_run is not None:
        from dltool.engine.mlflow_tracking import end_study_run

        best = record.to_dict()["best"]
        end_study_run(parent_run, best, settings.metric, interrupted=stop.is_set())
    return TuneResult(settings.study_dir, record, interrupted=stop.is_set())


def _with_parent_run(settings: TuneSettings) -> tuple[TuneSettings, str | None]:
    """With ``train.tracking: mlflow``, the study's parent MLflow run, set as every trial's
    ``train.mlflow.parent_run`` (trials are its child runs)."""
    train = settings.base["train"]
    if "mlflow" not in train["tracking"]:
        return settings, None
    from dltool.engine.mlflow_tracking import start_study_run

    run_id = start_study_run(settings.study_dir, settings.study_name, settings.base)
    mlflow = {**train["mlflow"], "parent_run": run_id}
    return replace(settings, base={**settings.base, "train": {**train, "mlflow": mlflow}}), run_id


def _start(settings: TuneSettings, study: Any, workers: int) -> StudyStart:
    return StudyStart(
        study_dir=str(settings.study_dir),
        study_name=settings.study_name,
        storage=public_url(settings.storage),
        dashboard=dashboard_command(settings.storage, settings.study_dir),
        n_trials=settings.n_trials,
        counted=sum(map(counts, study.get_trials(deepcopy=False))),
        sampler=settings.sampler,
        pruner=settings.pruner,
        metric=settings.metric,
        direction=settings.direction,
        workers=workers,
        folds=settings.folds,
    )
