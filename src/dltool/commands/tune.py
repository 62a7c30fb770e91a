"""``dltool tune``: validate the space, make or reopen the study dir, run trials, print the dir."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from dltool.commands import _complete
from dltool.commands._fetch import with_dataset
from dltool.commands._options import Quiet
from dltool.commands._output import emit_json, emit_line, say
from dltool.commands._overrides import Overrides, with_override_flags
from dltool.commands._signals import Stop, stop_on_signals
from dltool.errors import DltoolError

if TYPE_CHECKING:
    from dltool.tuning import StudyOptions, StudyRecord, TuneSettings

Opt = typer.Option
Recipe = Annotated[
    str,
    typer.Argument(help="Recipe name, YAML file or run dir every trial starts from.", autocompletion=_complete.recipes),
]
Space = Annotated[Path, Opt(help="Search space YAML: dotted config keys to ranges or lists of values.")]
Trials = Annotated[int | None, Opt(help="Trials to finish in all (default 20; a grid: its size).")]
Timeout = Annotated[float | None, Opt(help="Start no new trial after this many seconds.")]
Sampler = Annotated[str | None, Opt(help="tpe (default), random, grid or cmaes.")]
Pruner = Annotated[str | None, Opt(help="median (default), hyperband or none.")]
Metric = Annotated[
    str | None,
    Opt(
        help="What a trial scores: val_loss, train_loss or a metric of the model's task (default: val_acc "
        "for classifiers, val_loss for an autoencoder, val_miou for segmentation, val_pck for keypoints, "
        "val_r2 for regression)."
    ),
]
Direction = Annotated[str | None, Opt(help="maximize or minimize (default: by the metric).")]
Storage = Annotated[
    str | None,
    Opt(
        envvar="OPTUNA_STORAGE",
        show_envvar=True,
        help="SQLAlchemy URL, e.g. postgresql://user@host/db (default: $OPTUNA_STORAGE, else a journal in the study dir).",
    ),
]
Study = Annotated[
    str | None, Opt("--study-name", "--study", help="Study name in the storage (default: the study dir's name).")
]
Dashboard = Annotated[
    bool,
    Opt(
        "--dashboard",
        callback=lambda wanted: _dashboard_installed(wanted),
        help="Make (or reopen) the study, print the optuna-dashboard command that shows it, run no trial "
        + escape("(pip install 'dltool[dashboard]')."),  # typer's help reads rich markup: [dashboard] is a tag
    ),
]
Workers = Annotated[int, Opt(min=1, help="Local worker processes sharing the storage.")]
Folds = Annotated[
    int | None,
    Opt(
        min=2,
        help="Score each trial by k-fold cross-validation: the mean of its K folds' best values "
        "(as train --folds; the pruner acts between folds).",
    ),
]
Name = Annotated[str | None, Opt(help="Study dir name (default: <recipe>-tune-<n>); an existing one continues.")]
RunsDir = Annotated[Path, Opt(help="Where study dirs are created.")]
Restart = Annotated[
    bool,
    Opt(
        "--restart-study",
        help="With --name of an existing study dir: move its records into restarted-N/ and start the study afresh.",
    ),
]
AsJson = Annotated[bool, Opt("--json", help="Print study.json (with study_dir) instead of the path.")]
DryRun = Annotated[
    bool,
    Opt("--dry-run", help="Check the space, the study and one sample trial (data, model, a batch); write nothing."),
]


@with_override_flags
def tune(
    recipe: Recipe,
    space: Space,
    trials: Trials = None,
    timeout: Timeout = None,
    sampler: Sampler = None,
    pruner: Pruner = None,
    metric: Metric = None,
    direction: Direction = None,
    storage: Storage = None,
    study: Study = None,
    workers: Workers = 1,
    folds: Folds = None,
    name: Name = None,
    runs_dir: RunsDir = Path("runs"),
    restart_study: Restart = False,
    as_json: AsJson = False,
    dry_run: DryRun = False,
    quiet: Quiet = False,
    dashboard: Dashboard = False,
    *,
    overrides: Overrides,
) -> None:
    """Search hyperparameters: each trial is a run dir inside the study dir, which is printed.

    --seed also seeds the sampler. Example: STUDY=$(dltool tune digits-mlp --space space.yaml --trials 20 --epochs 10)
    """
    from dltool.tuning import StudyOptions

    options = StudyOptions(  # an intentional parallel of dltool.api.tune: the options are its keywords
        trials=trials,
        timeout=timeout,
        sampler=sampler,
        pruner=pruner,
        metric=metric,
        direction=direction,
        storage=storage,
        study_name=study,
        workers=workers,
        name=name,
        runs_dir=runs_dir,
        restart=restart_study,
        dry_run=dry_run,
        folds=folds,
    )
    settings = _prepare(recipe, space, options, overrides, quiet)
    if dry_run or dashboard:  # nothing run: what would be, or how to watch the study
        return _dry_run(settings, options) if dry_run else _print_dashboard(settings)
    _report(settings.study_dir, *_run(settings, workers, quiet), as_json=as_json, quiet=quiet)


def _prepare(recipe: str, space: Path, options: StudyOptions, overrides: Overrides, quiet: bool) -> TuneSettings:
    """The study's settings, once its dataset is here (downloaded first when missing: every
    trial checks that it is)."""
    from dltool.config import load_config
    from dltool.tuning import prepare_study

    with_dataset(load_config(recipe, overrides.sets, overrides.flags), quiet)
    return prepare_study(recipe, space, options, sets=overrides.sets, flags=overrides.flags)


def _dry_run(settings: TuneSettings, options: StudyOptions) -> None:
    from dltool.commands._tune_progress import params_text
    from dltool.engine.dryrun import dry_run
    from dltool.tuning.prepare import sample_trial

    values, config = sample_trial(settings)
    where = settings.study_dir if options.name else options.runs_dir / f"{settings.recipe}-tune-<n>"
    folds = f" × {settings.folds} folds (each trial's value: their mean)" if settings.folds else ""
    lines = [
        *settings.notes,
        f"would tune {where}: {settings.n_trials} trials{folds}, {settings.metric} ({settings.direction}), "
        f"sampler {settings.sampler}, pruner {settings.pruner}",
        f"a sample trial: {params_text(values)}",
        *dry_run(config).lines(),
    ]
    for line in lines:
        say(line)


def _dashboard_installed(wanted: bool) -> bool:
    """--dashboard's check, as it is parsed (before any study dir is made)."""
    import importlib.util

    from dltool.errors import UsageError

    if wanted and importlib.util.find_spec("optuna_dashboard") is None:
        raise UsageError("--dashboard: optuna-dashboard is not installed; pip install 'dltool[dashboard]'")
    return wanted


def _print_dashboard(settings: TuneSettings) -> None:
    """The command on stdout (``$(dltool tune ... --dashboard) &`` starts it), where to open it on stderr."""
    from dltool.tuning.storage import dashboard_command

    emit_line(dashboard_command(settings.storage, settings.study_dir))
    say(f"study {settings.study_name} in {settings.study_dir}: no trial run; it serves http://127.0.0.1:8080/")


def _run(settings: TuneSettings, workers: int, quiet: bool) -> tuple[StudyRecord, list[int]]:
    """The study's record at the end, and the signals that stopped it (none: it ran to the end)."""
    from dltool.commands._tune_progress import tune_progress
    from dltool.tuning import tune as run_study

    stop = Stop()
    try:
        with stop_on_signals(stop) as received, tune_progress(quiet) as observer:
            result = run_study(settings, workers=workers, observer=observer, stop=stop)
    except KeyboardInterrupt:  # a second Ctrl-C: the trial is marked failed, outputs written
        emit_line(str(settings.study_dir))
        raise typer.Exit(128 + signal.SIGINT) from None
    return result.record, (received or [signal.SIGINT]) if result.interrupted else []


def _report(study_dir: Path, record: StudyRecord, signals: list[int], *, as_json: bool, quiet: bool) -> None:
    """The study dir (or study.json with it) on stdout, the closing line on stderr; the exit
    code of a study stopped by a signal, an error when no trial completed."""
    if as_json:
        emit_json({"study_dir": str(study_dir), **record.to_dict()})
    else:
        emit_line(str(study_dir))
    if not quiet:
        hint = _continue_hint(study_dir) if signals else ""
        say(_closing_line(record) + hint)
    if signals:
        raise typer.Exit(128 + signals[0])
    if record.best is None:
        raise DltoolError(f"no trial of {study_dir} completed; see its trials.csv for the errors")


def _continue_hint(study_dir: Path) -> str:
    """How to go on with a stopped study: its name (without it, a rerun starts another study)."""
    runs_dir = "" if study_dir.parent == Path("runs") else f" --runs-dir {study_dir.parent}"
    return f"; continue with the same dltool tune command and --name {study_dir.name}{runs_dir}"


def _closing_line(record: StudyRecord) -> str:
    states = ", ".join(f"{count} {state.lower()}" for state, count in record.states.items() if count)
    line = f"study {record.study_name}: {states or 'no trials'}"
    if best := record.best:
        line += f"; best {record.metric} {best.value:.4f} (trial {best.number}, {best.run_dir})"
        if best.fold_values:
            line += f", the mean of folds {' '.join(f'{value:.4f}' for value in best.fold_values)}"
    return line
