"""``dltool tune``: validate the space, make or reopen the study dir, run trials, print the dir."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from dltool.commands import _complete
from dltool.commands._output import emit_json, emit_line, stderr
from dltool.commands._overrides import Overrides, with_override_flags
from dltool.commands._signals import stop_on_signals
from dltool.errors import DltoolError

Opt = typer.Option


@with_override_flags
def tune(
    recipe: Annotated[
        str,
        typer.Argument(
            help="Recipe name, YAML file or run dir every trial starts from.", autocompletion=_complete.recipes
        ),
    ],
    space: Annotated[Path, Opt(help="Search space YAML: dotted config keys to ranges or lists of values.")],
    trials: Annotated[int | None, Opt(help="Trials to finish in all (default 20; a grid: its size).")] = None,
    timeout: Annotated[float | None, Opt(help="Start no new trial after this many seconds.")] = None,
    sampler: Annotated[str | None, Opt(help="tpe (default), random, grid or cmaes.")] = None,
    pruner: Annotated[str | None, Opt(help="median (default), hyperband or none.")] = None,
    metric: Annotated[
        str | None, Opt(help="val_acc (default for classifiers), val_loss, train_acc, train_loss.")
    ] = None,
    direction: Annotated[str | None, Opt(help="maximize or minimize (default: by the metric).")] = None,
    storage: Annotated[
        str | None, Opt(help="SQLAlchemy URL, e.g. postgresql://user@host/db (default: a journal in the study dir).")
    ] = None,
    study: Annotated[str | None, Opt(help="Study name in the storage (default: the study dir's name).")] = None,
    workers: Annotated[int, Opt(min=1, help="Local worker processes sharing the storage.")] = 1,
    name: Annotated[
        str | None, Opt(help="Study dir name (default: <recipe>-tune-<n>); an existing one continues.")
    ] = None,
    runs_dir: Annotated[Path, Opt(help="Where study dirs are created.")] = Path("runs"),
    as_json: Annotated[bool, Opt("--json", help="Print study.json (with study_dir) instead of the path.")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress on stderr, errors only.")] = False,
    *,
    overrides: Overrides,
) -> None:
    """Search hyperparameters: each trial is a run dir inside the study dir, which is printed.

    --seed also seeds the sampler. Example: STUDY=$(dltool tune digits-mlp --space space.yaml --trials 20 --epochs 10)
    """
    from dltool.commands._tune_progress import tune_progress
    from dltool.tuning import prepare_study
    from dltool.tuning import tune as run_study
    from dltool.tuning.tuner import quiet_optuna

    quiet_optuna()
    settings = prepare_study(
        recipe,
        space,
        sets=overrides.sets,
        flags=overrides.flags,
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
    )
    stop = threading.Event()
    try:
        with stop_on_signals(stop) as received, tune_progress(quiet) as observer:
            result = run_study(settings, workers=workers, observer=observer, stop=stop)
    except KeyboardInterrupt:  # a second Ctrl-C: the trial is marked failed, outputs written
        emit_line(str(settings.study_dir))
        raise typer.Exit(128 + signal.SIGINT) from None
    document = result.study
    if as_json:
        emit_json({"study_dir": str(result.study_dir), **document})
    else:
        emit_line(str(result.study_dir))
    if not quiet:
        stderr.print(_closing_line(document), soft_wrap=True)
    if result.interrupted:
        raise typer.Exit(128 + (received[0] if received else signal.SIGINT))
    if document["best"] is None:
        raise DltoolError(f"no trial of {result.study_dir} completed; see its trials.csv for the errors")


def _closing_line(document: dict) -> str:
    states = ", ".join(f"{count} {state.lower()}" for state, count in document["states"].items() if count)
    line = f"study {document['study_name']}: {states or 'no trials'}"
    if best := document["best"]:
        line += f"; best {document['metric']} {best['value']:.4f} (trial {best['number']}, {best['run_dir']})"
    return line
