"""The study directory: one run dir per trial, and the record of the whole study.

```
runs/digits-mlp-tune-1/
  study.json      # study name, storage, metric, direction, budget, states, best, sampler, pruner
  trials.csv      # one row per trial: number, state, params..., value, [fold_values,] duration_s, run_dir, error
  best.yaml       # the best trial's resolved config: `dltool train best.yaml` reproduces it
  study.journal   # the Optuna journal (default storage)
  trial-0000/     # an ordinary run dir per trial (with --folds: fold-1/ ... and cv.json)
```

Every file here is rewritten atomically from the storage, which is the source of truth, so
any process of the study may write them at any time.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dltool._io import atomic_write_json, atomic_write_text
from dltool._version import __version__
from dltool._yaml import dump_yaml
from dltool.errors import CheckpointError
from dltool.rundir import BEST, STUDY
from dltool.tuning.records import STATES, BestTrial, StudyRecord
from dltool.tuning.settings import TuneSettings
from dltool.tuning.space import decode_value
from dltool.tuning.storage import JOURNAL_FILE, dashboard_command, open_storage, public_url, storage_errors

STUDY_JSON, TRIALS_CSV, BEST_YAML = STUDY, "trials.csv", BEST
# Held while a new study dir is made (dltool.tuning.prepare) and while a trial is claimed
# (dltool.tuning.worker).
STUDY_LOCK = ".tune.lock"


@dataclass(frozen=True)
class TrialRow:
    """One trial as trials.csv and the progress table show it."""

    number: int
    state: str
    params: dict[str, Any]
    value: float | None  # the final value, or the last reported one while running / pruned
    epochs: int  # epochs reported so far
    duration_s: float | None
    run_dir: str | None  # relative to the study dir when inside it
    error: str | None  # why it failed (its own error, or why it was stopped)
    counted: bool  # counts towards the study's n_trials (see ``counts``)
    fold_values: list[float] | None = None  # with folds: each finished fold's value


def counts(trial: Any) -> bool:
    """Whether a trial counts towards ``n_trials``: it finished on its own (COMPLETE, PRUNED,
    or FAIL with its own error), rather than being stopped, lost, or not needed."""
    state = trial.state.name
    return state in ("COMPLETE", "PRUNED") or (state == "FAIL" and "error" in trial.user_attrs)


def trial_row(trial: Any, study_dir: Path) -> TrialRow:
    """``study_dir`` resolved (run dirs are shown relative to it)."""
    import datetime

    reported = trial.intermediate_values
    value = trial.value if trial.value is not None else (reported[max(reported)] if reported else None)
    end = trial.datetime_complete or (datetime.datetime.now() if trial.state.name == "RUNNING" else None)
    duration = (end - trial.datetime_start).total_seconds() if end and trial.datetime_start else None
    attrs = trial.user_attrs
    error = attrs.get("error") or attrs.get("stopped")
    if trial.state.name == "FAIL" and not error:
        error = "lost: no heartbeat from its worker"  # failed by Optuna's heartbeat check
    params = {key: decode_value(v) for key, v in trial.params.items()}
    return TrialRow(
        trial.number,
        trial.state.name,
        params,
        value,
        len(reported),
        None if duration is None else round(duration, 3),
        _relative(attrs.get("run_dir"), study_dir),
        error,
        counts(trial),
        attrs.get("fold_values"),
    )


def trial_rows(study: Any, study_dir: Path) -> list[TrialRow]:
    resolved = Path(study_dir).resolve()
    return [trial_row(t, resolved) for t in study.get_trials(deepcopy=False)]


def best_trial(study: Any, maximize: bool) -> Any | None:
    """The COMPLETE trial with the best value (the lowest number among equals), or None."""
    complete = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "COMPLETE" and t.value is not None and math.isfinite(t.value)
    ]
    if not complete:
        return None
    return min(complete, key=lambda t: ((-t.value if maximize else t.value), t.number))


def write_outputs(study: Any, settings: TuneSettings) -> StudyRecord:
    """Rewrite trials.csv, best.yaml and study.json from the storage; returns study.json's record."""
    study_dir = settings.study_dir
    rows = trial_rows(study, study_dir)
    keys = list(dict.fromkeys([*settings.space, *(k for row in rows for k in row.params)]))
    atomic_write_text(study_dir / TRIALS_CSV, _csv(rows, keys, settings.folds))
    best = best_trial(study, settings.maximize)
    if best is not None and "config" in best.user_attrs:
        folds = f" --folds {settings.folds}" if settings.folds else ""
        header = (
            f"# Best trial {best.number} of study {study.study_name}: {settings.metric} {best.value:.6g} "
            f"({settings.direction}{f', mean of {settings.folds} folds' if folds else ''}).\n"
            f"# `dltool train best.yaml{folds}` trains this configuration again.\n"
        )
        atomic_write_text(study_dir / BEST_YAML, header + dump_yaml(_standalone(best.user_attrs["config"])))
    record = study_record(study, settings, rows, best)
    atomic_write_json(study_dir / STUDY_JSON, record.to_dict())
    return record


def _standalone(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's config as a run of its own: not a child of the study's MLflow run."""
    train = config["train"]
    return {**config, "train": {**train, "mlflow": {**train["mlflow"], "parent_run": None}}}


def study_record(study: Any, settings: TuneSettings, rows: list[TrialRow], best: Any | None) -> StudyRecord:
    """The study.json of ``study``: the storage's trials, and what only ``settings`` know."""
    states = dict.fromkeys(STATES, 0)
    for row in rows:
        states[row.state] = states.get(row.state, 0) + 1
    return StudyRecord(
        study_name=study.study_name,
        storage=public_url(settings.storage),
        metric=settings.metric,
        direction=settings.direction,
        n_trials=settings.n_trials,
        states=states,
        best=None if best is None else _best(best, settings.study_dir),
        sampler=settings.sampler,
        pruner=settings.pruner,
        seed=settings.seed,
        recipe=settings.recipe,
        space=settings.space,
        dashboard=dashboard_command(settings.storage, settings.study_dir),
        dltool_version=__version__,
        folds=settings.folds,
    )


def _best(trial: Any, study_dir: Path) -> BestTrial:
    params = {key: decode_value(v) for key, v in trial.params.items()}
    run_dir = _relative(trial.user_attrs.get("run_dir"), study_dir.resolve())
    return BestTrial(trial.number, trial.value, params, run_dir, trial.user_attrs.get("fold_values"))


def read_study_json(study_dir: Path) -> dict[str, Any]:
    path = Path(study_dir) / STUDY_JSON
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{study_dir}: not a dltool study dir (no {STUDY_JSON})") from None
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path}: unreadable: {error}") from None
    if not isinstance(document, dict) or not {"study_name", "storage"} <= set(document):
        raise CheckpointError(f"{path}: not a dltool study record (no study_name/storage)")
    return document


def read_study_record(study_dir: Path) -> StudyRecord:
    """study.json as a ``StudyRecord``: a study dir that dltool can continue."""
    return StudyRecord.from_dict(read_study_json(study_dir), Path(study_dir) / STUDY_JSON)


def open_study(study_dir: Path | str, storage: str | None = None) -> Any:
    """The ``optuna.Study`` of a study dir, from its study.json.

    study.json never holds a database password: pass ``storage`` (the full URL), or let the
    database driver find it (for PostgreSQL: ``$PGPASSWORD`` or ``~/.pgpass``).
    """
    import optuna

    study_dir = Path(study_dir)
    document = read_study_json(study_dir)
    url = storage or document["storage"]
    if url.startswith("journal:") and not (study_dir / JOURNAL_FILE).is_file():
        raise CheckpointError(f"{study_dir}: its journal {JOURNAL_FILE} is missing")
    try:
        with storage_errors(url, study_dir):
            return optuna.load_study(study_name=document["study_name"], storage=open_storage(url, study_dir))
    except KeyError:
        raise CheckpointError(f"{study_dir}: study {document['study_name']!r} is not in its storage") from None


def _relative(run_dir: str | None, study_dir: Path) -> str | None:
    """``run_dir`` relative to the (resolved) study dir when inside it, else as recorded."""
    if run_dir is None:
        return None
    try:
        return str(Path(run_dir).relative_to(study_dir))
    except ValueError:
        return run_dir


def _csv(rows: list[TrialRow], keys: list[str], folds: int) -> str:
    """With ``folds``, a ``fold_values`` column (a JSON list) follows ``value``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    per_fold = ["fold_values"] if folds else []
    writer.writerow(["number", "state", *keys, "value", *per_fold, "duration_s", "run_dir", "error"])
    for row in rows:
        params = [_cell(row.params.get(k)) for k in keys]
        value = row.value if row.state in ("COMPLETE", "PRUNED") else None
        fold_values = [_cell(row.fold_values)] if folds else []
        writer.writerow(
            [row.number, row.state, *params, _cell(value), *fold_values, _cell(row.duration_s)]
            + [row.run_dir or "", row.error or ""]
        )
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return repr(value) if isinstance(value, float) else str(value)
