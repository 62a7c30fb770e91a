"""``dltool train``: resolve the config, create the run dir, train, print the run dir."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Any

import typer

import dltool.tasks as tasks
from dltool._text import counted
from dltool.commands import _complete
from dltool.commands._fetch import with_dataset
from dltool.commands._options import Quiet
from dltool.commands._output import emit_line, say
from dltool.commands._overrides import Overrides, with_override_flags
from dltool.commands._signals import Stop, stop_on_signals
from dltool.errors import UsageError

Opt = typer.Option


@with_override_flags
def train(
    recipe: Annotated[
        str | None,
        typer.Argument(help="Recipe name, YAML file or run dir to start from.", autocompletion=_complete.recipes),
    ] = None,
    name: Annotated[str | None, Opt(help="Run dir name (default: <recipe>-<n>).")] = None,
    runs_dir: Annotated[Path, Opt(help="Where run dirs are created.")] = Path("runs"),
    resume: Annotated[Path | None, Opt(help="Continue this run dir from checkpoints/last.pt.")] = None,
    print_config: Annotated[bool, Opt("--print-config", help="Print the resolved config as YAML and exit.")] = False,
    dry_run: Annotated[
        bool, Opt("--dry-run", help="Check data, model and one batch; print the plan; write no run.")
    ] = False,
    folds: Annotated[int | None, Opt(min=2, help="k-fold cross-validation: K runs under one folder, cv.json.")] = None,
    overfit_batches: Annotated[int | None, Opt(min=1, help="Sanity check: can it memorise N batches?")] = None,
    find_lr: Annotated[bool, Opt("--find-lr", help="LR range test: print a suggested learning rate.")] = False,
    as_json: Annotated[bool, Opt("--json", help="With --overfit-batches/--find-lr: a JSON document.")] = False,
    quiet: Quiet = False,
    *,
    overrides: Overrides,
) -> None:
    """Train a model; prints the run dir (and nothing else) on stdout.

    Example: RUN=$(dltool train digits-mlp --lr 1e-3 --set model.depth=3)
    """
    flags, set_ = overrides.flags, overrides.sets
    modes = {"--resume": resume, "--folds": folds, "--overfit-batches": overfit_batches, "--find-lr": find_lr}
    mode = _one_mode(modes | {"--print-config": print_config})
    _refuse_unused(mode, dry_run=dry_run, named=name is not None, as_json=as_json)
    if dry_run:
        return _dry_run(_ready(recipe, flags, set_ or [], quiet), folds)
    if resume is not None:
        outcome = _resume(resume, recipe, flags, set_ or [], quiet)
    elif folds is not None:
        from dltool.commands._crossval import run_folds

        return run_folds(_ready(recipe, flags, set_ or [], quiet), recipe, folds, runs_dir, name, quiet)
    elif overfit_batches is not None or find_lr:
        from dltool.commands._sanity import run_sanity_check

        return run_sanity_check(_ready(recipe, flags, set_ or [], quiet), recipe, overfit_batches, runs_dir, as_json)
    else:
        outcome = _start(recipe, flags, set_ or [], name, runs_dir, print_config, quiet)
    if outcome is not None:
        _report(*outcome, quiet=quiet)


def _report(result: Any, signals: list[int], *, quiet: bool) -> None:
    """The run dir on stdout, the closing line on stderr; an interrupted run's exit code."""
    if result.run_dir is not None:  # under torchrun only rank 0 has one
        emit_line(str(result.run_dir))
        if not quiet:
            say(_closing_line(result))
    if result.status == "interrupted":
        raise typer.Exit(128 + (signals[0] if signals else signal.SIGINT))


def _one_mode(modes: dict[str, Any]) -> str | None:
    """The one of ``modes`` given (a value other than None or False), if any: two are a
    usage error, where one of them was ignored (``--find-lr --folds 5`` trained five runs,
    ``--resume RUN --print-config`` resumed the run)."""
    chosen = [flag for flag, value in modes.items() if value not in (None, False)]
    if len(chosen) > 1:
        raise UsageError(f"{chosen[0]} and {chosen[1]} cannot be combined: give one of them")
    return chosen[0] if chosen else None


def _refuse_unused(mode: str | None, *, dry_run: bool, named: bool, as_json: bool) -> None:
    """``--dry-run``, ``--json`` and ``--name`` where ``mode`` would ignore them, as usage errors."""
    if dry_run and mode not in (None, "--folds"):
        raise UsageError(f"--dry-run checks a new run (or the first fold of --folds); drop {mode}")
    if as_json and (dry_run or mode not in ("--overfit-batches", "--find-lr")):
        raise UsageError(f"--json goes with --overfit-batches or --find-lr; {JSON_ELSEWHERE}")
    if named and mode in ("--resume", "--overfit-batches", "--find-lr"):
        raise UsageError(f"--name names a training run's dir, which {mode} does not start: drop it")


JSON_ELSEWHERE = 'a run prints its dir, whose summary.json is its record: jq .test "$RUN/summary.json"'


def _dry_run(config: Any, folds: int | None) -> None:
    from dltool.engine.dryrun import dry_run

    first = [f"--folds {folds}: {folds} runs, each validating on one fold; the first is checked"] if folds else []
    for line in first + dry_run(_first_fold(config, folds) if folds else config).lines():
        say(line)


def _first_fold(config: Any, folds: int) -> Any:
    """The config of ``--folds``' first run, after the usage errors of ``--folds`` itself."""
    from dltool.engine.crossval import check_folds, fold_config

    check_folds(config, folds)
    return fold_config(config, folds, 0)


def _ready(recipe: str | None, flags: dict[str, Any], sets: list[str], quiet: bool) -> Any:
    """The config of a run about to start, its named dataset downloaded first when missing."""
    return with_dataset(_config(recipe, flags, sets), quiet)


def _config(recipe: str | None, flags: dict[str, Any], sets: list[str]) -> Any:
    from dltool.config import load_config

    if recipe is None:
        raise UsageError("name a recipe or config file, e.g. dltool train digits-mlp (see: dltool list recipes)")
    return load_config(recipe, sets, flags)


def _start(
    recipe: str | None,
    flags: dict[str, Any],
    sets: list[str],
    name: str | None,
    runs_dir: Path,
    print_config: bool,
    quiet: bool,
) -> Any:
    from dltool._yaml import dump_yaml
    from dltool.config import resolve_source

    config = _config(recipe, flags, sets)
    if print_config:
        emit_line(dump_yaml(config.to_dict()).rstrip())
        return None
    from dltool.engine import start_run
    from dltool.engine.distributed import world_from_env

    with_dataset(config, quiet)
    source = resolve_source(recipe or "").name
    return _with_progress(
        lambda observer, stop: start_run(config, source, runs_dir=runs_dir, name=name, observer=observer, stop=stop),
        quiet,
        live=world_from_env().is_main,
    )  # under torchrun rank 0 shows progress, the other ranks only their messages


def _resume(path: Path, recipe: str | None, flags: dict[str, Any], sets: list[str], quiet: bool) -> Any:
    from dltool.engine import resume
    from dltool.engine.distributed import world_from_env
    from dltool.rundir import open_run_dir

    if recipe is not None or sets:
        raise UsageError("--resume continues a run with its own config: drop the recipe and --set")
    run = open_run_dir(path)
    return _with_progress(
        lambda observer, stop: resume(run, overrides=flags, observer=observer, stop=stop),
        quiet,
        live=world_from_env().is_main,
    )


def _with_progress(start: Any, quiet: bool, live: bool = True) -> tuple[Any, list[int]]:
    """Run ``start(observer, stop)`` with progress on stderr and SIGINT/SIGTERM as a clean stop
    (``live``: a bar where stderr can animate, else plain lines).

    Returns the run's result and the signals received."""
    from dltool.commands._progress import training_progress

    stop = Stop()
    with stop_on_signals(stop) as received, training_progress(quiet, live) as observer:
        result = start(observer, stop)
    return result, received


def _closing_line(result: Any) -> str:
    summary, status = result.summary, result.status
    setup = f", setup {summary['setup_time_s']:.1f}s" if "setup_time_s" in summary else ""  # none before 0.2
    parts = [f"{status} after {counted(summary['epochs_run'], 'epoch')}: training {summary['wall_time_s']:.1f}s{setup}"]
    if best := summary.get("best"):
        parts.append(f"best {best['metric']} {best['value']:.4f} at epoch {best['epoch']}")
    if test := summary.get("test"):
        split = "test (= val: no held-out test split)" if summary.get("test_is_val") else "test"
        parts.append(f"{split} {_headline(test, result.task)} (n={test['n']})")
    if status == "interrupted":
        parts.append(f"continue with: dltool train --resume {result.run_dir}")
    return "; ".join(parts)


def _headline(test: dict[str, Any], task: str) -> str:
    """'PCK 0.9950, RMSE (px) 1.2800': the task's headline test scores (the loss without them)."""
    shown = [(key, label) for key, label in tasks.info(task).headline if key in test] or [("loss", "loss")]
    return ", ".join(f"{label} {test[key]:.4f}" for key, label in shown)
