"""MLflow tracking of a run (``train.tracking: mlflow``; ``pip install 'dltool[mlflow]'``).

The server is MLflow's own choice: ``$MLFLOW_TRACKING_URI`` (default ``./mlruns``). A run is
one MLflow run in ``train.mlflow.experiment`` (else ``$MLFLOW_EXPERIMENT_NAME``, else
``dltool``), named ``train.mlflow.run_name`` or the run dir's name, and logs:

- the config flattened to dotted keys as params (values as text);
- each number of every metrics.jsonl record at step = epoch, as it is written;
- at the end, ``best_<monitored metric>`` and the test scores (``test_loss``, ``test_acc``,
  ...), its status (FINISHED, KILLED when interrupted, FAILED), and the run dir's files as
  artifacts — less ``checkpoints/``, the training state that only ``--resume`` needs.

The MLflow run's id is kept in ``RUN/mlflow.json``: a resumed run goes on in the same MLflow
run (params are not logged again; an extended ``train.epochs`` would clash with MLflow's
rule that a param never changes). ``tune`` makes a parent run for the study and each trial
a child run of it (``train.mlflow.parent_run``). Only this module imports MLflow.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dltool._io import atomic_write_json
from dltool.config.loading import flatten
from dltool.errors import TrackingError, UsageError
from dltool.rundir import RunDir, read_json_object

if TYPE_CHECKING:
    import torch

    from dltool.engine.setup import Components

AXES = {"epoch", "step"}  # metrics.jsonl keys that place a record rather than measure it
BATCH = 100  # params or metrics per request: MLflow's log_batch takes at most 100 params
STATUS = {"completed": "FINISHED", "early_stopped": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}
DEFAULT_EXPERIMENT = "dltool"


def require_mlflow() -> None:
    """A usage error saying what to install when MLflow is missing."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise UsageError("train.tracking: mlflow is not installed; pip install 'dltool[mlflow]'") from None


class MlflowRun:
    """The MLflow run of one dltool run; the engine keeps one on rank 0 only."""

    def __init__(self, client: Any, run_id: str, run: RunDir) -> None:
        self.client, self.run_id, self.run = client, run_id, run

    def log_epoch(self, record: dict[str, Any]) -> None:
        numbers = {k: v for k, v in record.items() if k not in AXES and _is_number(v)}
        with refusals(f"failed to log epoch {record['epoch']}"):
            self._log_metrics(numbers, record["epoch"])

    def log_end(self, summary: dict[str, Any], confusion: torch.Tensor | None) -> None:
        """The best and test scores, the run dir's files, and the MLflow run's end status."""
        with refusals("failed to end the run"):
            self._log_end(summary)

    def _log_end(self, summary: dict[str, Any]) -> None:
        last = summary["epochs_run"]
        scores = {f"test_{k}": v for k, v in (summary.get("test") or {}).items() if k != "n" and _is_number(v)}
        if best := summary.get("best"):
            self._log_metrics({f"best_{best['metric']}": best["value"]}, best["epoch"])
        self._log_metrics(scores, last)
        self.client.set_tag(self.run_id, "dltool_status", summary["status"])
        for path in sorted(self.run.path.rglob("*")):
            relative = path.relative_to(self.run.path)
            if path.is_file() and relative.parts[0] != "checkpoints" and not path.name.startswith("."):
                parent = relative.parent.as_posix()
                self.client.log_artifact(self.run_id, str(path), None if parent == "." else parent)
        _terminate(self.client, self.run_id, STATUS.get(summary["status"], "FINISHED"))

    def _log_metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, step) for key, value in values.items()]
        for start in range(0, len(metrics), BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + BATCH])


@contextmanager
def open_mlflow(run: RunDir, parts: Components, history: list[dict[str, Any]]) -> Iterator[MlflowRun]:
    """The MLflow run of ``run``: created with its params (a new run), or reopened from
    ``RUN/mlflow.json`` (a resumed one, whose earlier epochs it holds already)."""
    require_mlflow()
    from mlflow import MlflowClient

    stored = read_json_object(run.mlflow)
    with refusals("refused the run"):
        client = MlflowClient()
        if stored is not None and isinstance(stored.get("run_id"), str):
            run_id = stored["run_id"]
            client.update_run(run_id, status="RUNNING")
        else:
            run_id = _create_run(client, run, parts.config)
    yield MlflowRun(client, run_id, run)


@contextmanager
def refusals(what: str) -> Iterator[None]:
    """MLflow's errors (a server gone, or one that refuses) as a ``TrackingError`` naming the
    store and what failed: "MLflow at URL ``what``: MLflow's message"."""
    from mlflow import get_tracking_uri
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as error:
        raise TrackingError(f"MLflow at {get_tracking_uri()} {what}: {' '.join(error.message.split())}") from None


def _create_run(client: Any, run: RunDir, config: Any) -> str:
    """A new MLflow run for ``run`` with the config as params; its id saved in RUN/mlflow.json."""
    from mlflow.entities import Param

    settings = config.train.mlflow
    experiment_id = experiment(client, settings.experiment)
    tags = {"dltool_run_dir": str(run.path.resolve())}
    if settings.parent_run:
        tags["mlflow.parentRunId"] = settings.parent_run
    created = client.create_run(experiment_id, run_name=settings.run_name or run.path.name, tags=tags)
    run_id: str = created.info.run_id
    atomic_write_json(run.mlflow, {"run_id": run_id, "experiment_id": experiment_id})
    params = [Param(key, str(value)) for key, value in flatten(config.to_dict()).items()]
    for start in range(0, len(params), BATCH):
        client.log_batch(run_id, params=params[start : start + BATCH])
    return run_id


def experiment(client: Any, name: str | None) -> str:
    """The id of experiment ``name`` (else $MLFLOW_EXPERIMENT_NAME, else dltool), made if new."""
    name = name or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    found = client.get_experiment_by_name(name)
    return str(found.experiment_id) if found is not None else str(client.create_experiment(name))


def start_study_run(study_dir: Path, study_name: str, config: dict[str, Any]) -> str:
    """The parent MLflow run of a study's trials: reopened from ``STUDY/mlflow.json`` when the
    study is continued, else created there (named after the study)."""
    require_mlflow()
    from mlflow import MlflowClient

    client = MlflowClient()
    record = study_dir / "mlflow.json"
    stored = read_json_object(record)
    with refusals("refused the study's run"):
        if stored is not None and isinstance(stored.get("run_id"), str):
            client.update_run(stored["run_id"], status="RUNNING")
            return str(stored["run_id"])
        experiment_id = experiment(client, config["train"]["mlflow"]["experiment"])
        tags = {"dltool_study_dir": str(study_dir.resolve())}
        run_id = str(client.create_run(experiment_id, run_name=study_name, tags=tags).info.run_id)
    atomic_write_json(record, {"run_id": run_id, "experiment_id": experiment_id})
    return run_id


def end_study_run(run_id: str, best: dict[str, Any] | None, metric: str, interrupted: bool) -> None:
    """The study's best value as ``best_<metric>``, and the parent run's end."""
    from mlflow import MlflowClient

    client = MlflowClient()
    with refusals("failed to end the study's run"):
        if best is not None and _is_number(best.get("value")):
            client.log_metric(run_id, f"best_{metric}", float(best["value"]), step=int(best["number"]))
        _terminate(client, run_id, "KILLED" if interrupted else "FINISHED")


def _terminate(client: Any, run_id: str, status: str) -> None:
    """End the MLflow run. MLflow writes a "View run ... at URL" line to stdout as it does,
    which would mix with the run dir on dltool's stdout: it is dropped."""
    with contextlib.redirect_stdout(io.StringIO()):
        client.set_terminated(run_id, status)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
