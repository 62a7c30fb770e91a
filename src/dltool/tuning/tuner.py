"""Run a prepared study until ``n_trials`` have finished, in this process or in K local
worker processes (``tuning.pool``).

Counting: a trial counts towards ``n_trials`` once it finished on its own — COMPLETE,
PRUNED, or FAIL with its own error. A trial failed because its worker was stopped (Ctrl-C),
lost (killed, a dead node) or not needed (a race between machines) is recorded but does not
count, so running the same command again completes the study.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dltool.errors import TrackerTimeout, TrackingError
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
    short: bool = False  # fewer trials count than n_trials: stopped, timed out, or its workers died

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

        return _decoded(pd.read_csv(self.study_dir / TRIALS_CSV))


# A list or mapping (a param's choice, fold_values) is itself in ``TuneResult.trials``, as
# ``best`` has it, not the JSON text that holds it in the csv.
def _decoded(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each column of JSON lists or mappings decoded."""
    for column, decoded in [(column, frame[column].map(_json_cell).astype(object)) for column in frame.columns]:
        if any(isinstance(cell, (list, dict)) for cell in decoded):
            frame[column] = decoded
    return frame


def _json_cell(cell: Any) -> Any:
    """A cell of JSON text holding a list or a mapping, decoded; any other cell as it is."""
    with contextlib.suppress(ValueError):  # text that only starts like JSON stays text
        if isinstance(cell, str) and cell[:1] in ("[", "{"):
            return json.loads(cell)
    return cell


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
        short = sum(map(counts, study.get_trials(deepcopy=False))) < settings.n_trials
    if parent_run is not None:
        _end_parent_run(parent_run, record, settings.metric, stop.is_set(), observer)
    return TuneResult(settings.study_dir, record, interrupted=stop.is_set(), short=short)


def _end_parent_run(run_id: str, record: StudyRecord, metric: str, interrupted: bool, observer: TuneObserver) -> None:
    """The study's MLflow run ends with its best value; a tracker that fails here is a
    warning, as in a run (engine.trackers): the study is done and its dir records it."""
    from dltool.engine.mlflow_tracking import end_study_run

    try:
        end_study_run(run_id, record.to_dict()["best"], metric, interrupted=interrupted)
    except TrackingError as error:
        observer.on_message(f"warning: mlflow: {error}; the study dir keeps every record")


def _with_parent_run(settings: TuneSettings) -> tuple[TuneSettings, str | None]:
    """With ``train.tracking: mlflow``, the study's parent MLflow run, set as every trial's
    ``train.mlflow.parent_run`` (trials are its child runs). A server that does not answer is
    a warning, and the study and its trials go on without MLflow (one wait, not one a trial)."""
    train = settings.base["train"]
    if "mlflow" not in train["tracking"]:
        return settings, None
    from dltool.engine.mlflow_tracking import start_study_run

    try:
        run_id = start_study_run(settings.study_dir, settings.study_name, settings.base)
    except TrackerTimeout as error:
        untracked = {**train, "tracking": [name for name in train["tracking"] if name != "mlflow"]}
        note = f"warning: mlflow: {error}; the study goes on without it (the study dir keeps every record)"
        return replace(settings, base={**settings.base, "train": untracked}, notes=(*settings.notes, note)), None
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
