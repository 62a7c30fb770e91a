"""One worker of a study: claim a trial, run it, until the study has its trials.

``run_worker`` runs in the ``tune`` process itself (one worker), or in each of K processes
started as ``python -m dltool.tuning.worker_process INDEX`` (``--workers K``, see
``tuning.pool`` and ``tuning.worker_process``).
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from dltool.tuning._optuna import quiet_optuna
from dltool.tuning.liveness import sweep_stale_trials, worker_identity
from dltool.tuning.progress import TuneObserver
from dltool.tuning.pruners import build_pruner
from dltool.tuning.samplers import build_sampler, sampler_seed
from dltool.tuning.settings import TuneSettings
from dltool.tuning.space import SearchSpace, encode_value, parse_space
from dltool.tuning.storage import JOURNAL, open_storage, storage_errors
from dltool.tuning.study import STUDY_LOCK, counts, trial_rows, write_outputs
from dltool.tuning.trial import run_trial, stop_trial

POLL_S = 0.5


def run_worker(
    settings: TuneSettings,
    *,
    index: int = 0,
    parallel: bool = False,
    stop: threading.Event,
    observer: TuneObserver | None = None,
    write: bool = True,
) -> None:
    """Claim and run trials until the study has its trials, ``stop`` is set or time is up.

    ``index`` tells the workers' samplers apart; ``parallel`` says other workers share the
    study. ``write``: rewrite the study dir's outputs after each trial (the worker of a
    supervised pool leaves that to the supervisor).
    """
    observer = observer or TuneObserver()
    with quiet_optuna(), storage_errors(settings.storage, settings.study_dir):
        study = load_study(settings, index=index, parallel=parallel)
        publish = _publisher(study, settings, observer, write)
        _run_trials(study, settings, stop, observer, publish)


def _run_trials(
    study: Any, settings: TuneSettings, stop: threading.Event, observer: TuneObserver, publish: Callable[[bool], None]
) -> None:
    from filelock import FileLock

    space = parse_space(settings.space, settings.base)
    lock = FileLock(str(settings.study_dir / STUDY_LOCK))
    deadline = None if settings.timeout is None else time.monotonic() + settings.timeout
    publish(False)
    while (trial := _claim(study, settings, space, lock, stop, deadline, observer)) is not None:
        progress = iter([True])  # the outputs are written when the trial starts, then after it
        outcome = run_trial(
            study,
            trial,
            space=space,
            base=settings.base,
            grid=settings.grid,
            study_dir=settings.study_dir,
            metric=settings.metric,
            maximize=settings.maximize,
            stop=stop,
            on_progress=functools.partial(_publish_next, publish, progress),
            folds=settings.folds,
        )
        publish(True)
        if outcome.interrupted:
            break
    publish(False)


def _publish_next(publish: Callable[[bool], None], flags: Iterator[bool]) -> None:
    """``publish`` with the next of ``flags`` (False once they run out)."""
    publish(next(flags, False))


def _publisher(study: Any, settings: TuneSettings, observer: TuneObserver, write: bool) -> Callable[[bool], None]:
    """Show every trial; with ``write_files`` (and ``write``), rewrite the study dir's outputs too."""

    def publish(write_files: bool) -> None:
        observer.on_trials(trial_rows(study, settings.study_dir))
        if write and write_files:
            write_outputs(study, settings)

    return publish


def load_study(settings: TuneSettings, *, index: int = 0, parallel: bool = False) -> Any:
    """The study from its storage, with this worker's sampler and the study's pruner."""
    import optuna

    storage = open_storage(settings.storage, settings.study_dir)
    study = optuna.load_study(
        study_name=settings.study_name,
        storage=storage,
        sampler=optuna.samplers.RandomSampler(),
        pruner=build_pruner(settings.pruner, settings.steps),
    )
    seed = sampler_seed(settings.seed, index, len(study.get_trials(deepcopy=False)))
    study.sampler = build_sampler(settings.sampler, seed, parallel=parallel or settings.storage != JOURNAL)
    return study


# --- claiming a trial -------------------------------------------------------------------


def _claim(
    study: Any,
    settings: TuneSettings,
    space: SearchSpace,
    lock: Any,
    stop: threading.Event,
    deadline: float | None,
    observer: TuneObserver,
) -> Any | None:
    """A new RUNNING trial of this worker, or None when the study needs no more."""
    said_waiting = False
    while not stop.is_set():
        if deadline is not None and time.monotonic() > deadline:
            observer.on_message(f"--timeout {settings.timeout:g}s reached: no new trials")
            return None
        sweep_lost_trials(study, settings, observer)
        with lock:  # local workers claim one at a time; other machines are caught by _surplus
            trials = study.get_trials(deepcopy=False)
            done = sum(map(counts, trials))
            running = sum(t.state.name == "RUNNING" for t in trials)
            if done >= settings.n_trials:
                return None
            if done + running < settings.n_trials and (trial := _ask(study, settings, space, trials)):
                trial.set_user_attr("worker", worker_identity())
                if not _surplus(study, trial, settings):
                    return trial
                continue
        if not said_waiting:
            observer.on_message("waiting for the running trials of other workers")
            said_waiting = True
        stop.wait(POLL_S)
    return None


def sweep_lost_trials(study: Any, settings: TuneSettings, observer: TuneObserver) -> None:
    """Fail the RUNNING trials whose worker is gone, say so, and end their MLflow runs."""
    for number in sweep_stale_trials(study):
        observer.on_message(f"trial {number}: its worker is gone; marked FAIL")
        if "mlflow" in settings.base["train"]["tracking"]:
            _end_lost_mlflow_run(study.get_trials(deepcopy=False)[number], observer)


def _end_lost_mlflow_run(trial: Any, observer: TuneObserver) -> None:
    """A lost trial's MLflow run would stay RUNNING for ever: nothing else will end it. Its run
    dir may be on another machine (a heartbeat lost there), where there is nothing to read."""
    from dltool.engine.mlflow_tracking import end_lost_run
    from dltool.errors import TrackingError
    from dltool.rundir import RunDir

    if run_dir := trial.user_attrs.get("run_dir"):
        try:
            end_lost_run(RunDir(Path(run_dir)))
        except TrackingError as error:
            observer.on_message(f"warning: mlflow: {error}; the study dir keeps every record")


def _ask(study: Any, settings: TuneSettings, space: SearchSpace, trials: list[Any]) -> Any | None:
    """``study.ask()``; a grid first queues its next point not taken yet (None: all taken)."""
    if settings.grid:
        taken = {_point_id(_point(t)) for t in trials if counts(t) or t.state.name in ("RUNNING", "WAITING")}
        point = next((p for p in space.grid(settings.base) if _point_id(_encoded(p)) not in taken), None)
        if point is not None:
            study.enqueue_trial(_encoded(point))
        elif not any(t.state.name == "WAITING" for t in trials):
            return None
    return study.ask()  # (inside run_worker's quiet_optuna: heartbeats with ask() warn)


def _surplus(study: Any, trial: Any, settings: TuneSettings) -> bool:
    """A trial that another machine's worker made unnecessary meanwhile: fail it, uncounted."""
    trials = study.get_trials(deepcopy=False)
    earlier = [t for t in trials if t.number < trial.number and (counts(t) or t.state.name == "RUNNING")]
    reason = None
    if len(earlier) >= settings.n_trials:
        reason = f"not run: the study already had {settings.n_trials} trials"
    elif settings.grid:
        mine = _point_id(_point(next(t for t in trials if t.number == trial.number)))
        if any(_point_id(_point(t)) == mine for t in earlier):
            reason = "not run: another worker took the same grid point"
    if reason:
        stop_trial(study, trial, reason)
    return reason is not None


def _point(trial: Any) -> dict[str, Any]:
    return dict(trial.params) or dict(trial.system_attrs.get("fixed_params") or {})


def _encoded(point: Mapping[str, Any]) -> dict[str, Any]:
    return {k: encode_value(v) for k, v in point.items()}


def _point_id(point: Mapping[str, Any]) -> str:
    return json.dumps(point, sort_keys=True)
