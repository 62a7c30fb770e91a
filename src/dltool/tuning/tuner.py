"""A study end to end: prepare it (validate, make or reopen the study dir), run trials until
``n_trials`` have finished, in this process or in K local worker processes.

Counting: a trial counts towards ``n_trials`` once it finished on its own — COMPLETE,
PRUNED, or FAIL with its own error. A trial failed because its worker was stopped (Ctrl-C),
lost (killed, a dead node) or not needed (a race between machines) is recorded but does not
count, so running the same command again completes the study.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from dltool.config.schema import METRICS
from dltool.errors import CheckpointError, UnknownNameError, UsageError
from dltool.tuning.space import SearchSpace, encode_value, load_space, parse_space
from dltool.tuning.storage import (
    JOURNAL,
    check_storage,
    dashboard_command,
    open_storage,
    optuna_quiet,
    public_url,
    same_storage,
    sweep_stale_trials,
    worker_identity,
)
from dltool.tuning.study import TrialRow, counts, read_study_json, trial_rows, write_outputs
from dltool.tuning.trial import TrialOutcome, run_trial

SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("none", "median", "hyperband")
DIRECTIONS = ("maximize", "minimize")
DEFAULT_TRIALS = 20
POLL_S = 0.5
WORKER_MODULE = "dltool.commands._tune_worker"


@dataclass(frozen=True)
class TuneSettings:
    """Everything a worker needs to run trials of a study (JSON-serialisable)."""

    study_dir: Path
    study_name: str
    storage: str  # JOURNAL or an SQLAlchemy URL (with its password: never written to disk)
    base: dict[str, Any]  # the resolved config every trial starts from
    space: dict[str, Any]  # the search space as written
    metric: str
    direction: str
    sampler: str
    pruner: str
    n_trials: int
    seed: int | None = None
    timeout: float | None = None
    recipe: str | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    def record(self) -> dict[str, Any]:
        """What study.json holds beyond the storage's own data."""
        return {
            "storage": self.storage,
            "metric": self.metric,
            "direction": self.direction,
            "n_trials": self.n_trials,
            "sampler": self.sampler,
            "pruner": self.pruner,
            "seed": self.seed,
            "recipe": self.recipe,
            "space": self.space,
        }

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "study_dir": str(self.study_dir), "notes": []})

    @classmethod
    def from_json(cls, text: str) -> TuneSettings:
        document = json.loads(text)
        return cls(**{**document, "study_dir": Path(document["study_dir"]), "notes": ()})


class TuneObserver:
    """No-op base: the CLI renders these on stderr."""

    def on_start(self, info: dict[str, Any]) -> None:
        """Once: study dir, study name, storage, dashboard command, budget, trials counted so far."""

    def on_trials(self, rows: list[TrialRow]) -> None:
        """Whenever a trial starts, reports an epoch or ends: every trial of the study."""

    def on_message(self, text: str) -> None:
        """A line for the user."""


@dataclass(frozen=True)
class TuneResult:
    study_dir: Path
    study: dict[str, Any]  # the study.json document
    interrupted: bool

    @property
    def best(self) -> dict[str, Any] | None:
        """The best trial: ``{number, value, params, run_dir}`` (None before one completes)."""
        return self.study["best"]


def prepare_study(
    recipe: str,
    space: Path | Mapping[str, Any],
    *,
    sets: Iterable[str] = (),
    flags: Mapping[str, Any] | None = None,
    trials: int | None = None,
    timeout: float | None = None,
    sampler: str | None = None,
    pruner: str | None = None,
    metric: str | None = None,
    direction: str | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    workers: int = 1,
    name: str | None = None,
    runs_dir: Path = Path("runs"),
) -> TuneSettings:
    """Validate everything, then create the study dir (or reopen ``runs_dir/name``) and the study.

    ``space``: a search space file, or its mapping of dotted keys. Usage errors are raised
    before anything is created. ``flags["train.seed"]`` also seeds the sampler.
    """
    from dltool.config import load_config, resolve_source
    from dltool.engine.setup import check_runnable

    flags = dict(flags or {})
    config = load_config(recipe, sets, flags)
    base = config.to_dict()
    search_space = parse_space(space, base) if isinstance(space, Mapping) else load_space(space, base)
    _refuse_overlap(search_space, sets, flags)
    if workers < 1:
        raise UsageError("--workers: at least 1")
    if timeout is not None and timeout <= 0:
        raise UsageError("--timeout: a number of seconds > 0")
    study_dir = runs_dir / name if name else None
    stored = _stored_record(study_dir) if study_dir is not None and study_dir.exists() else None
    metric, direction = _objective(config, metric, direction, stored)
    sampler = _choice("sampler", sampler or (stored or {}).get("sampler") or "tpe", SAMPLERS)
    pruner = _choice("pruner", pruner or (stored or {}).get("pruner") or "median", PRUNERS)
    storage = check_storage(storage or (stored or {}).get("storage"), workers)
    if stored is not None:
        _check_continuation(stored, storage, study_name)
    n_trials, notes = _budget(trials, sampler, search_space, base, stored)
    check_runnable(config)  # before any dir is made, as train does

    created = study_dir is None or stored is None
    if created:
        from dltool.rundir import create_run_dir

        study_dir = create_run_dir(runs_dir, f"{resolve_source(recipe).name}-tune", name).path
    assert study_dir is not None  # given, or made just now
    settings = TuneSettings(
        study_dir=study_dir,
        study_name=study_name or (stored or {}).get("study_name") or study_dir.name,
        storage=storage,
        base=base,
        space=dict(search_space.raw),
        metric=metric,
        direction=direction,
        sampler=sampler,
        pruner=pruner,
        n_trials=n_trials,
        seed=flags.get("train.seed"),
        timeout=timeout,
        recipe=resolve_source(recipe).name,
        notes=tuple(notes),
    )
    try:
        study = _create_study(settings)
    except BaseException:
        if created:  # an unreachable database leaves no empty study dir behind
            shutil.rmtree(study_dir, ignore_errors=True)
        raise
    write_outputs(study, settings.study_dir, settings.record())
    return settings


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
    study = _load_study(settings)
    counted = sum(map(counts, study.get_trials(deepcopy=False)))
    observer.on_start(
        {
            "study_dir": str(settings.study_dir),
            "study_name": settings.study_name,
            "storage": public_url(settings.storage),
            "dashboard": dashboard_command(settings.storage, settings.study_dir),
            "n_trials": settings.n_trials,
            "counted": counted,
            "sampler": settings.sampler,
            "pruner": settings.pruner,
            "metric": settings.metric,
            "direction": settings.direction,
            "workers": workers,
        }
    )
    for note in settings.notes:
        observer.on_message(note)
    try:
        if workers == 1:
            run_worker(settings, stop=stop, observer=observer)
        else:
            _supervise(settings, workers, observer, stop)
    finally:
        document = write_outputs(study, settings.study_dir, settings.record())
    return TuneResult(settings.study_dir, document, interrupted=stop.is_set())


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
    study = _load_study(settings, index=index, parallel=parallel)
    space = parse_space(settings.space, settings.base)
    from filelock import FileLock

    lock = FileLock(str(settings.study_dir / ".tune.lock"))
    deadline = None if settings.timeout is None else time.monotonic() + settings.timeout

    def publish(write_files: bool) -> None:
        observer.on_trials(trial_rows(study, settings.study_dir))
        if write and write_files:
            write_outputs(study, settings.study_dir, settings.record())

    publish(False)
    while (trial := _claim(study, settings, space, lock, stop, deadline, observer)) is not None:
        progress = iter([True])  # the outputs are written when the trial starts, then after it

        outcome: TrialOutcome = run_trial(
            study,
            trial,
            space=space,
            base=settings.base,
            grid=settings.sampler == "grid",
            study_dir=settings.study_dir,
            metric=settings.metric,
            maximize=settings.maximize,
            stop=stop,
            on_progress=functools.partial(_publish_next, publish, progress),
        )
        publish(True)
        if outcome.interrupted:
            break
    publish(False)


def _publish_next(publish: Callable[[bool], None], flags: Iterator[bool]) -> None:
    """``publish`` with the next of ``flags`` (False once they run out)."""
    publish(next(flags, False))


def quiet_optuna() -> None:
    """For entry points: Optuna's INFO line per trial would interleave with dltool's table."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


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
    from optuna.trial import TrialState

    said_waiting = False
    while not stop.is_set():
        if deadline is not None and time.monotonic() > deadline:
            observer.on_message(f"--timeout {settings.timeout:g}s reached: no new trials")
            return None
        for number in sweep_stale_trials(study):
            observer.on_message(f"trial {number}: its worker is gone; marked FAIL")
        with lock:  # local workers claim one at a time; other machines are caught by _surplus
            trials = study.get_trials(deepcopy=False)
            done = sum(map(counts, trials))
            running = sum(t.state == TrialState.RUNNING for t in trials)
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


def _ask(study: Any, settings: TuneSettings, space: SearchSpace, trials: list[Any]) -> Any | None:
    """``study.ask()``; a grid first queues its next point not taken yet (None: all taken)."""
    if settings.sampler == "grid":
        taken = {_point_id(_point(t)) for t in trials if counts(t) or t.state.name in ("RUNNING", "WAITING")}
        point = next((p for p in space.grid(settings.base) if _point_id(_encoded(p)) not in taken), None)
        if point is not None:
            study.enqueue_trial(_encoded(point))
        elif not any(t.state.name == "WAITING" for t in trials):
            return None
    with optuna_quiet():
        return study.ask()


def _surplus(study: Any, trial: Any, settings: TuneSettings) -> bool:
    """A trial that another machine's worker made unnecessary meanwhile: fail it, uncounted."""
    from dltool.tuning.trial import _stopped

    trials = study.get_trials(deepcopy=False)
    earlier = [t for t in trials if t.number < trial.number and (counts(t) or t.state.name == "RUNNING")]
    reason = None
    if len(earlier) >= settings.n_trials:
        reason = f"not run: the study already had {settings.n_trials} trials"
    elif settings.sampler == "grid":
        mine = _point_id(_point(study._storage.get_trial(trial._trial_id)))
        if any(_point_id(_point(t)) == mine for t in earlier):
            reason = "not run: another worker took the same grid point"
    if reason:
        _stopped(study, trial, reason)
    return reason is not None


def _point(trial: Any) -> dict[str, Any]:
    return dict(trial.params) or dict(trial.system_attrs.get("fixed_params") or {})


def _encoded(point: Mapping[str, Any]) -> dict[str, Any]:
    return {k: encode_value(v) for k, v in point.items()}


def _point_id(point: Mapping[str, Any]) -> str:
    return json.dumps(point, sort_keys=True)


# --- the study in its storage -----------------------------------------------------------


def _create_study(settings: TuneSettings) -> Any:
    import optuna

    storage = open_storage(settings.storage, settings.study_dir)
    study = optuna.create_study(
        study_name=settings.study_name,
        storage=storage,
        direction=cast(Literal["minimize", "maximize"], settings.direction),
        load_if_exists=True,
    )
    existing = study.direction.name.lower()
    if existing != settings.direction:
        raise UsageError(
            f"study {settings.study_name!r} in {public_url(settings.storage)} is set to "
            f"{existing}; use --direction {existing} or another --study"
        )
    return study


def _load_study(settings: TuneSettings, *, index: int = 0, parallel: bool = False) -> Any:
    import optuna

    storage = open_storage(settings.storage, settings.study_dir)
    study = optuna.load_study(
        study_name=settings.study_name,
        storage=storage,
        sampler=optuna.samplers.RandomSampler(),
        pruner=_pruner(settings),
    )
    existing = len(study.get_trials(deepcopy=False))
    study.sampler = _sampler(
        settings, _seed(settings.seed, index, existing), parallel=parallel or settings.storage != JOURNAL
    )
    return study


def _seed(seed: int | None, index: int, existing: int) -> int | None:
    """Each worker and each session draws its own sequence; a fresh single-worker study with
    the same seed draws the same one."""
    if seed is None:
        return None
    import numpy as np

    return int(np.random.SeedSequence([seed, index, existing]).generate_state(1)[0])


def _sampler(settings: TuneSettings, seed: int | None, parallel: bool) -> Any:
    import optuna

    if settings.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=parallel)
    if settings.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.RandomSampler(seed=seed)  # random, and grid (which fixes every value)


def _pruner(settings: TuneSettings) -> Any:
    import optuna

    if settings.pruner == "median":
        return optuna.pruners.MedianPruner()
    if settings.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=settings.base["train"]["epochs"])
    return optuna.pruners.NopPruner()


# --- local worker processes ---------------------------------------------------------------


def _supervise(settings: TuneSettings, workers: int, observer: TuneObserver, stop: threading.Event) -> None:
    """Start ``workers`` processes on the storage, show their trials, forward a stop."""
    logs = settings.study_dir / "workers"
    logs.mkdir(exist_ok=True)
    processes = [_start_worker(settings, index, workers, logs) for index in range(workers)]
    study = _load_study(settings)
    written: Any = None
    signalled = False
    try:
        while True:
            alive = [p for p in processes if p.poll() is None]
            if stop.is_set() and not signalled:
                for process in alive:
                    process.send_signal(signal.SIGINT)
                signalled = True
            rows = trial_rows(study, settings.study_dir)
            observer.on_trials(rows)
            if (states := [(r.number, r.state) for r in rows]) != written:
                write_outputs(study, settings.study_dir, settings.record())
                written = states
            if not alive:
                break
            time.sleep(POLL_S)
    except BaseException:  # a second Ctrl-C: the workers stop at once too
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            process.wait(timeout=60)
        raise
    for index, process in enumerate(processes):
        code = process.returncode
        if code < 0:
            observer.on_message(f"worker {index} was killed by signal {-code}; its trial was marked FAIL")
        elif code not in (0, 128 + signal.SIGINT, 128 + signal.SIGTERM):
            observer.on_message(f"worker {index} exited with code {code}: {_last_line(logs / f'worker-{index}.log')}")


def _start_worker(settings: TuneSettings, index: int, workers: int, logs: Path) -> subprocess.Popen:
    # The settings travel on stdin, so a database password is never written to disk. Each
    # worker has its own session: a Ctrl-C reaches this process, which forwards it once.
    with open(logs / f"worker-{index}.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, str(index)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
            env=_worker_env(workers),
        )
    assert process.stdin is not None
    process.stdin.write(settings.to_json().encode())
    process.stdin.close()
    return process


def _worker_env(workers: int) -> dict[str, str]:
    """Each worker's share of the cores as ``OMP_NUM_THREADS`` (which ``threads: auto`` then
    follows), as torchrun does: K processes each on every core would contend for them."""
    from dltool.engine.threads import usable_cores

    return {"OMP_NUM_THREADS": str(max(1, usable_cores() // workers)), **os.environ}


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty log)"


# --- validation -------------------------------------------------------------------------


def _refuse_overlap(space: SearchSpace, sets: Iterable[str], flags: Mapping[str, Any]) -> None:
    from dltool.config.loading import parse_set

    fixed = {key: f"--{key.split('.')[-1].replace('_', '-')}" for key in flags}
    for assignment in sets:
        fixed.update({key: "--set" for key in _dotted(parse_set(assignment))})
    for key in space.keys:
        if key in fixed:
            raise UsageError(f"{key}: both fixed by {fixed[key]} and tuned by the space; drop one of them")


def _dotted(layer: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in layer.items():
        path = f"{prefix}{key}"
        keys += _dotted(value, path + ".") if isinstance(value, Mapping) else [path]
    return keys


def _objective(config: Any, metric: str | None, direction: str | None, stored: dict | None) -> tuple[str, str]:
    from dltool.models import models

    classifier = models.get(config.model.name).params.task == "classification"
    if stored is not None:
        for flag, given, kept in (
            ("--metric", metric, stored["metric"]),
            ("--direction", direction, stored["direction"]),
        ):
            if given is not None and given != kept:
                raise UsageError(
                    f"{flag} {given}: this study tunes {stored['metric']} ({stored['direction']}); "
                    f"start another study for {given}"
                )
        return stored["metric"], stored["direction"]
    metric = _choice("metric", metric or ("val_acc" if classifier else "val_loss"), METRICS)
    if metric.endswith("_acc") and not classifier:
        raise UsageError(
            f"--metric {metric}: model {config.model.name!r} is not a classifier; use val_loss or train_loss"
        )
    direction = _choice("direction", direction or ("maximize" if metric.endswith("_acc") else "minimize"), DIRECTIONS)
    return metric, direction


def _choice(kind: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise UnknownNameError(kind, value, allowed)
    return value


def _stored_record(study_dir: Path) -> dict[str, Any]:
    try:
        return read_study_json(study_dir)
    except CheckpointError as error:
        raise UsageError(
            f"{study_dir} exists and is not a study to continue ({error}); choose another --name"
        ) from None


def _check_continuation(stored: dict[str, Any], storage: str, study_name: str | None) -> None:
    if not same_storage(storage, stored["storage"]):
        raise UsageError(f"--storage {public_url(storage)}: this study lives in {stored['storage']}")
    if study_name is not None and study_name != stored["study_name"]:
        raise UsageError(f"--study {study_name}: this study dir holds study {stored['study_name']!r}")


def _budget(
    trials: int | None, sampler: str, space: SearchSpace, base: dict[str, Any], stored: dict | None
) -> tuple[int, list[str]]:
    if trials is not None and trials < 1:
        raise UsageError("--trials: at least 1")
    wanted = trials or (stored or {}).get("n_trials") or None
    if sampler != "grid":
        return wanted or DEFAULT_TRIALS, []
    size = space.grid_size(base)
    if wanted is not None and wanted > size:
        return size, [f"the grid has {size} points: running {size} trials, not {wanted}"]
    return wanted or size, []
