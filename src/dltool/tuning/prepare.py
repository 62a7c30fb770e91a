"""Prepare a study: validate everything, then make the study dir (or reopen one) and the
study in its storage. Usage errors are raised before anything is created."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import dltool.tasks as tasks
from dltool.errors import ConfigError, DltoolError, UnknownNameError, UsageError, option
from dltool.tuning import pruners, samplers
from dltool.tuning._optuna import quiet_optuna
from dltool.tuning.continuation import (
    check_continuation,
    refuse_changed_space,
    refuse_changed_splits,
    refuse_lost_trials,
    set_records_aside,
    stored_record,
)
from dltool.tuning.records import StudyRecord
from dltool.tuning.settings import DEFAULT_TRIALS, DIRECTIONS, StudyOptions, TuneSettings
from dltool.tuning.space import SearchSpace, load_space, parse_space
from dltool.tuning.storage import check_storage, open_storage, public_url, storage_errors
from dltool.tuning.study import STUDY_LOCK, write_outputs

if TYPE_CHECKING:
    from dltool.rundir import RunDir

# How long a process continuing a study waits for another that is making it (opening its
# storage and writing study.json takes well under a second, a remote database longer).
MAKING_WAIT_S = 60.0


def prepare_study(
    recipe: str,
    space: Path | Mapping[str, Any],
    options: StudyOptions | None = None,
    *,
    sets: Iterable[str] = (),
    flags: Mapping[str, Any] | None = None,
) -> TuneSettings:
    """Validate everything, then create the study dir (or reopen ``runs_dir/name``) and the study.

    ``space``: a search space file, or its mapping of dotted keys. ``flags["train.seed"]``
    also seeds the sampler. A reopened study dir whose storage lost trials it records is
    refused, unless ``options.restart`` sets its records aside first. With ``options.dry_run``
    the settings are returned once checked, before anything is made or moved.
    """
    from dltool.config import load_config
    from dltool.engine.setup import check_runnable

    options, flags = options or StudyOptions(), dict(flags or {})
    config = load_config(recipe, sets, flags)
    base = config.to_dict()
    search_space = parse_space(space, base) if isinstance(space, Mapping) else load_space(space, base)
    _refuse_overlap(search_space, sets, flags)
    _check_numbers(options)
    stored = _stored(options.runs_dir / options.name) if options.name else None
    settings = _settings(recipe, config, search_space, options, stored, flags.get("train.seed"))
    check_runnable(config)  # before any dir is made, as train does
    if settings.folds:
        _check_folds(config, search_space, settings.folds)
    if stored is not None and not options.restart:
        refuse_changed_space(settings)  # --dry-run checks them too
        refuse_changed_splits(settings)
    if options.dry_run:
        return settings
    opened = _open_study(settings, stored, options)
    # None: another process made this study dir a moment ago; prepare again to continue it.
    return opened or prepare_study(recipe, space, options, sets=sets, flags=flags)


def _stored(study_dir: Path) -> StudyRecord | None:
    """The record of the study dir ``--name`` names, once the process making it (another
    ``dltool tune --name`` started at the same time) has written it; None when there is none."""
    from dltool.rundir import wait_until_made

    if not study_dir.exists():
        return None
    if not wait_until_made(study_dir, STUDY_LOCK, MAKING_WAIT_S):
        raise DltoolError(f"{study_dir}: another dltool tune has been making this study for {MAKING_WAIT_S:.0f} s")
    return stored_record(study_dir) if study_dir.exists() else None  # its maker failed and removed it


def _open_study(settings: TuneSettings, stored: StudyRecord | None, options: StudyOptions) -> TuneSettings | None:
    """Make the study dir and the study, or reopen them; None when another process claimed
    the study dir's name first."""
    if stored is not None:
        settings = _reopened(settings, stored, options)
        _start_study(settings, None)
        return settings
    with ExitStack() as scope:
        try:
            settings, claimed = _claim_study_dir(settings, options, scope)
        except FileExistsError:
            return None
        _start_study(settings, claimed)
    return settings


def _reopened(settings: TuneSettings, stored: StudyRecord, options: StudyOptions) -> TuneSettings:
    if not options.restart:
        refuse_lost_trials(settings, stored)
        return settings
    aside = set_records_aside(settings)
    return replace(settings, notes=(*settings.notes, f"started afresh: the earlier records are in {aside}"))


def _settings(
    recipe: str, config: Any, space: SearchSpace, options: StudyOptions, stored: StudyRecord | None, seed: int | None
) -> TuneSettings:
    """Every choice resolved: the options, else what the study recorded, else the defaults."""
    from dltool.config import resolve_source

    metric, direction = _objective(config, options.metric, options.direction, stored)
    sampler = samplers.samplers.get(options.sampler or (stored and stored.sampler) or samplers.DEFAULT).name
    pruner = pruners.pruners.get(options.pruner or (stored and stored.pruner) or pruners.DEFAULT).name
    storage = check_storage(options.storage or (stored.storage if stored else None), options.workers)
    if stored is not None:
        check_continuation(stored, storage, options.study_name)
    n_trials, notes = _budget(options.trials, sampler, space, config.to_dict(), stored)
    folds = _folds(options.folds, stored)
    # A new study dir without --name is named when it is claimed (``_claim_study_dir``).
    study_dir = options.runs_dir / (options.name or "")
    return TuneSettings(
        study_dir=study_dir,
        study_name=options.study_name or (stored.study_name if stored else study_dir.name),
        storage=storage,
        base=config.to_dict(),
        space=dict(space.raw),
        metric=metric,
        direction=direction,
        sampler=sampler,
        pruner=pruner,
        n_trials=n_trials,
        seed=seed,
        timeout=options.timeout,
        recipe=resolve_source(recipe).name,
        folds=folds,
        notes=tuple(notes),
    )


def sample_trial(settings: TuneSettings) -> tuple[dict[str, Any], Any]:
    """One trial's values, drawn at random (seeded by the study's seed), and its config (with
    folds: its first fold's run's)."""
    import optuna

    space = parse_space(settings.space, settings.base)
    with quiet_optuna():
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=settings.seed or 0)).ask()
    values = space.suggest(trial, settings.base, settings.grid)
    config = space.apply(settings.base, values)
    if settings.folds:
        config = config.model_copy(update={"data": config.data.model_copy(update={"cv_folds": settings.folds})})
    return values, config


def _claim_study_dir(settings: TuneSettings, options: StudyOptions, scope: ExitStack) -> tuple[TuneSettings, RunDir]:
    """Make the new study dir: the next ``<recipe>-tune-<n>``, or ``runs_dir/name`` with its
    lock held while ``scope`` lasts, so that others wait for it to continue it (``_stored``).
    ``FileExistsError``: another process made ``runs_dir/name`` first."""
    from dltool.rundir import claimed_with_lock, create_run_dir

    if options.name is None:
        claimed = create_run_dir(options.runs_dir, f"{settings.recipe}-tune")
    else:
        claimed = scope.enter_context(claimed_with_lock(options.runs_dir, options.name, STUDY_LOCK))
    study_name = options.study_name or claimed.path.name
    return replace(settings, study_dir=claimed.path, study_name=study_name), claimed


def _start_study(settings: TuneSettings, claimed: RunDir | None) -> None:
    """The study in its storage (made, or checked), and the study dir's files written.
    ``claimed``: the study dir this process just made, or None for one it reopened."""
    try:
        with quiet_optuna(), storage_errors(settings.storage, settings.study_dir):
            write_outputs(_create_study(settings), settings)
    except BaseException:
        if claimed is not None:  # an unreachable or damaged database leaves no empty folder behind
            claimed.discard()
        raise


def _create_study(settings: TuneSettings) -> Any:
    import optuna

    storage = open_storage(settings.storage, settings.study_dir)
    study = optuna.create_study(
        study_name=settings.study_name,
        storage=storage,
        direction=cast(Literal["minimize", "maximize"], settings.direction),  # one of DIRECTIONS
        load_if_exists=True,
    )
    existing = study.direction.name.lower()
    if existing != settings.direction:
        raise UsageError(
            f"study {settings.study_name!r} in {public_url(settings.storage)} is set to "
            f"{existing}; use {option('direction', existing)} or another {option('study')}"
        )
    # A study without the attr is one from before --folds (one run a trial), unless it is new.
    folds = study.user_attrs.get("folds", 0 if study.get_trials(deepcopy=False) else settings.folds)
    if folds != settings.folds:
        raise UsageError(
            f"study {settings.study_name!r} in {public_url(settings.storage)} scores its trials with "
            f"{_folds_text(folds)}, not {_folds_text(settings.folds)}; use {option('folds', folds)} or another {option('study')}"
        )
    if "folds" not in study.user_attrs:
        study.set_user_attr("folds", settings.folds)
    if study.metric_names is None:  # Optuna's name for the value, which optuna-dashboard and its plots show
        study.set_metric_names([settings.metric])
    return study


# --- validation -------------------------------------------------------------------------


def _check_numbers(options: StudyOptions) -> None:
    if options.workers < 1:
        raise UsageError(f"{option('workers', options.workers)}: at least 1")
    if options.timeout is not None and options.timeout <= 0:
        raise UsageError(f"{option('timeout', options.timeout)}: a number of seconds > 0")
    if options.trials is not None and options.trials < 1:
        raise UsageError(f"{option('trials', options.trials)}: at least 1")


def _refuse_overlap(space: SearchSpace, sets: Iterable[str], flags: Mapping[str, Any]) -> None:
    from dltool.config.loading import parse_set

    # The command's flags (--lr) and the API's overrides arrive as ``flags``; --set as ``sets``.
    fixed = {key: option(key.split(".")[-1], python=f"overrides[{key!r}]") for key in flags}
    for assignment in sets:
        fixed.update({key: option("overrides", python="overrides") for key in _dotted(parse_set(assignment))})
    for key in space.keys:
        if key in fixed:
            raise UsageError(f"{key}: both fixed by {fixed[key]} and tuned by the space; drop one of them")


def _dotted(layer: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in layer.items():
        path = f"{prefix}{key}"
        keys += _dotted(value, path + ".") if isinstance(value, Mapping) else [path]
    return keys


def _objective(config: Any, metric: str | None, direction: str | None, stored: StudyRecord | None) -> tuple[str, str]:
    if stored is not None:
        for keyword, given, kept in (("metric", metric, stored.metric), ("direction", direction, stored.direction)):
            if given is not None and given != kept:
                raise UsageError(
                    f"{option(keyword, given)}: this study tunes {stored.metric} ({stored.direction}); "
                    f"start another study for {given}"
                )
        return stored.metric, stored.direction
    task = tasks.task_name(config.model)
    metric = _choice("metric", metric or tasks.info(task).objective, tasks.record_metrics())
    try:
        tasks.check_metric(metric, task, option("metric", metric))
    except ConfigError as error:
        raise UsageError(error.unspelled) from None
    direction = _choice("direction", direction or ("maximize" if tasks.maximize(metric) else "minimize"), DIRECTIONS)
    return metric, direction


def _folds(folds: int | None, stored: StudyRecord | None) -> int:
    """``--folds``, else what a continued study recorded, else 0 (one run a trial)."""
    if folds is not None and folds < 2:
        raise UsageError(f"{option('folds', folds)}: at least 2 (each trial trains K runs, each validated on one fold)")
    if stored is not None and folds is not None and folds != stored.folds:
        raise UsageError(
            f"{option('folds', folds)}: this study scores its trials with {_folds_text(stored.folds)}; "
            "start another study to score them otherwise"
        )
    return folds if folds is not None else (stored.folds if stored else 0)


def _folds_text(folds: int) -> str:
    return f"{folds}-fold cross-validation" if folds else "one run each (no cross-validation)"


def _check_folds(config: Any, space: SearchSpace, folds: int) -> None:
    """Usage errors of ``--folds`` with this config and space, before anything is made."""
    from dltool.engine.crossval import check_folds

    tuned = [key for key in space.keys if key in ("data.cv_folds", "data.cv_fold")]
    if tuned:
        raise UsageError(f"{option('folds', folds)} sets {tuned[0]} for each fold's run: drop it from the space")
    check_folds(config, folds)


def _choice(kind: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise UnknownNameError(kind, value, allowed)
    return value


def _budget(
    trials: int | None, sampler: str, space: SearchSpace, base: dict[str, Any], stored: StudyRecord | None
) -> tuple[int, list[str]]:
    wanted = trials or (stored.n_trials if stored else None)
    if not samplers.is_grid(sampler):
        return wanted or DEFAULT_TRIALS, []
    size = space.grid_size(base)
    if wanted is not None and wanted > size:
        return size, [f"the grid has {size} points: running {size} trials, not {wanted}"]
    return wanted or size, []
