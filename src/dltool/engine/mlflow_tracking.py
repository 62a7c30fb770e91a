"""MLflow tracking of a run (``train.tracking: mlflow``; ``pip install 'dltool[mlflow]'``).

The server is MLflow's own choice: ``$MLFLOW_TRACKING_URI`` (default ``./mlruns``). A run is
one MLflow run in ``train.mlflow.experiment`` (else ``$MLFLOW_EXPERIMENT_NAME``, else
``dltool``), named ``train.mlflow.run_name`` or the run dir's name, and logs:

- the config flattened to dotted keys as params (values as text);
- each number of every metrics.jsonl record at step = epoch, as it is written;
- at the end, ``best_<monitored metric>`` and the test scores (``test_loss``, ``test_accuracy``,
  ...), its status (FINISHED, KILLED when interrupted, FAILED; tags ``dltool_status`` and
  ``dltool_stop_reason`` from summary.json), and the run dir's files as
  artifacts — less ``checkpoints/``, the training state that only ``--resume`` needs.

A server that takes the connection and never answers would stall the run for MLflow's request
timeout once per retry (``MLFLOW_HTTP_REQUEST_TIMEOUT``, 120 s, up to 7 retries with backoff:
20 minutes a call, for every call): dltool waits one timeout for each call (``answered``),
then goes on without MLflow, with a warning (``TrackerTimeout``), even when the run starts.

The MLflow run's id is kept in ``RUN/mlflow.json``: a resumed run goes on in the same MLflow
run (params are not logged again; an extended ``train.epochs`` would clash with MLflow's
rule that a param never changes). ``tune`` makes a parent run for the study and each trial
a child run of it (``train.mlflow.parent_run``); a trial lost with its worker is ended FAILED by
the process that finds it lost (``end_lost_run``). Only this module imports MLflow.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dltool._io import atomic_write_json
from dltool.config.loading import flatten
from dltool.errors import TrackerTimeout, TrackingError, UsageError
from dltool.rundir import RunDir, read_json_object

if TYPE_CHECKING:
    import torch

    from dltool.engine.setup import Components

AXES = {"epoch", "step"}  # metrics.jsonl keys that place a record rather than measure it
BATCH = 100  # params or metrics per request: MLflow's log_batch takes at most 100 params
STATUS = {"completed": "FINISHED", "early_stopped": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}
DEFAULT_EXPERIMENT = "dltool"
UPLOAD_BYTES_PER_S = 1 << 20  # the slowest artifact upload waited for, beyond one request timeout
T = TypeVar("T")


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
        answered(f"failed to log epoch {record['epoch']}", lambda: self._log_metrics(numbers, record["epoch"]))

    def log_end(self, summary: dict[str, Any], confusion: torch.Tensor | None) -> None:
        """The best and test scores, the run dir's files, and the MLflow run's end status."""
        uploads = sum(path.stat().st_size for path in self._artifacts()) / UPLOAD_BYTES_PER_S
        answered("failed to end the run", lambda: self._log_end(summary), uploads)

    def _artifacts(self) -> list[Path]:
        """The run dir's files MLflow keeps: all but ``checkpoints/`` and hidden files."""
        root = self.run.path
        return [
            path
            for path in sorted(root.rglob("*"))
            if path.is_file() and path.relative_to(root).parts[0] != "checkpoints" and not path.name.startswith(".")
        ]

    def _log_end(self, summary: dict[str, Any]) -> None:
        last = summary["epochs_run"]
        scores = {f"test_{k}": v for k, v in (summary.get("test") or {}).items() if k != "n" and _is_number(v)}
        if best := summary.get("best"):
            self._log_metrics({f"best_{best['metric']}": best["value"]}, best["epoch"])
        self._log_metrics(scores, last)
        self.client.set_tag(self.run_id, "dltool_status", summary["status"])
        # KILLED is a Ctrl-C and a pruned tune trial alike: the reason tells them apart
        self.client.set_tag(self.run_id, "dltool_stop_reason", summary.get("stop_reason") or "")
        for path in self._artifacts():
            parent = path.relative_to(self.run.path).parent.as_posix()
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
    client = answered("refused the run", MlflowClient)  # a file store may refuse here
    if stored is not None and isinstance(stored.get("run_id"), str):
        run_id = stored["run_id"]
        answered("refused the run", lambda: client.update_run(run_id, status="RUNNING"))
    else:
        run_id = answered("refused the run", lambda: _create_run(client, run, parts.config))
    yield MlflowRun(client, run_id, run)


def answered(what: str, call: Callable[[], T], extra_s: float = 0.0) -> T:
    """``call()``'s MLflow requests under ``refusals``, waited for one request timeout (plus
    ``extra_s``), else a ``TrackerTimeout``: the call goes on in a daemon thread, which a
    hung server keeps, and the run without MLflow. ``what`` is said of a refusal."""
    from mlflow import get_tracking_uri
    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_TIMEOUT

    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(_outcome(call)), name="mlflow", daemon=True)
    worker.start()
    timeout: Callable[[], Any] = MLFLOW_HTTP_REQUEST_TIMEOUT.get  # MLflow's reader is untyped
    limit = float(timeout()) + extra_s
    worker.join(limit)
    if not outcome:
        raise TrackerTimeout(
            f"MLflow at {get_tracking_uri()} did not answer in {limit:g} s ({MLFLOW_HTTP_REQUEST_TIMEOUT})"
        )
    with refusals(what):
        result: T = _result(outcome[0])
    return result


def _outcome(call: Callable[[], Any]) -> tuple[bool, Any]:
    try:
        return True, call()
    except Exception as error:  # re-raised in the caller's thread
        return False, error


def _result(outcome: tuple[bool, Any]) -> Any:
    succeeded, value = outcome
    if not succeeded:
        raise value
    return value


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

    client = answered("refused the study's run", MlflowClient)
    record = study_dir / "mlflow.json"
    stored = read_json_object(record)
    if stored is not None and isinstance(stored.get("run_id"), str):
        answered("refused the study's run", lambda: client.update_run(stored["run_id"], status="RUNNING"))
        return str(stored["run_id"])
    experiment_id = answered(
        "refused the study's run", lambda: experiment(client, config["train"]["mlflow"]["experiment"])
    )
    tags = {"dltool_study_dir": str(study_dir.resolve())}
    created = answered(
        "refused the study's run", lambda: client.create_run(experiment_id, run_name=study_name, tags=tags)
    )
    run_id = str(created.info.run_id)
    atomic_write_json(record, {"run_id": run_id, "experiment_id": experiment_id})
    return run_id


def end_study_run(run_id: str, best: dict[str, Any] | None, metric: str, interrupted: bool) -> None:
    """The study's best value as ``best_<metric>``, and the parent run's end."""
    from mlflow import MlflowClient

    client = answered("failed to end the study's run", MlflowClient)

    def end() -> None:
        if best is not None and _is_number(best.get("value")):
            client.log_metric(run_id, f"best_{metric}", float(best["value"]), step=int(best["number"]))
        _terminate(client, run_id, "KILLED" if interrupted else "FINISHED")

    answered("failed to end the study's run", end)


def end_lost_run(run: RunDir) -> None:
    """End the MLflow run of a run whose process is gone (a tune trial marked lost): FAILED,
    tagged ``dltool_status: lost``, rather than RUNNING for ever. A run never tracked is left."""
    stored = read_json_object(run.mlflow)
    if stored is None or not isinstance(stored.get("run_id"), str):
        return
    require_mlflow()
    from mlflow import MlflowClient

    client, run_id = answered("failed to end a lost run", MlflowClient), stored["run_id"]

    def end() -> None:
        client.set_tag(run_id, "dltool_status", "lost")
        _terminate(client, run_id, "FAILED")

    answered("failed to end a lost run", end)


def _terminate(client: Any, run_id: str, status: str) -> None:
    """End the MLflow run. MLflow writes a "View run ... at URL" line to stdout as it does,
    which would mix with the run dir on dltool's stdout: it is dropped."""
    with contextlib.redirect_stdout(io.StringIO()):
        client.set_terminated(run_id, status)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
