"""A study made by ``dltool tune``: optimisation history, parameter importances, parallel
coordinates and slices (Optuna's matplotlib plots), and a report with its trials.

The study dir holds ``study.json`` (``study_name``, ``storage``, ``metric``, ``direction``,
``n_trials``, ``states``, ``best``, ``sampler``, ``pruner``), ``trials.csv``, ``best.yaml``
and a run dir per trial. ``storage`` is an SQLAlchemy URL, or ``journal:FILE``: an Optuna
journal file, relative to the study dir (``journal:study.journal``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from dltool.errors import CheckpointError, UsageError
from dltool.figures.canvas import Plotter, Visualization, inches, pyplot
from dltool.tuning.space import decode_value
from dltool.tuning.storage import check_journal, check_sqlite, storage_errors
from dltool.tuning.study import TrialRow, read_study_json, trial_rows
from dltool.viz import report

STUDY_FILE = "study.json"
JOURNAL_PREFIX = "journal:"
TRIALS_SHOWN = 200  # rows of the report's trial table (best first beyond this)
HISTORY_SIZE = (7.2, 4.4)
IMPORTANCES_SIZE = (7.2, 4.0)
PARALLEL_SIZE = (8.8, 4.8)
SLICE_PANEL = (3.4, 4.2)  # per parameter
SLICE_MAX_WIDTH = 17.0


def is_study_dir(path: Path) -> bool:
    return (Path(path) / STUDY_FILE).is_file()


def open_study(study_dir: Path):  # -> optuna.Study
    """The Optuna study of ``study_dir``, read from the storage its ``study.json`` names.

    Never creates anything: a journal or SQLite file that is not there is an error (Optuna
    would make an empty one), and tables are not created in a database that lacks them.
    """
    import optuna

    study_dir = Path(study_dir)
    document = read_study_json(study_dir)
    storage_spec: str = document["storage"]
    if storage_spec.startswith(JOURNAL_PREFIX):
        journal = study_dir / storage_spec.removeprefix(JOURNAL_PREFIX)
        if not journal.is_file():
            raise CheckpointError(f"{study_dir}: the study's journal {journal.name} is missing")
        from optuna.storages.journal import JournalFileBackend

        check_journal(journal)  # a damaged one is one line, not Optuna's traceback
        storage: Any = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    else:
        url = _local_sqlite(storage_spec, study_dir)
        check_sqlite(url)
        storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
    try:
        with storage_errors(storage_spec, study_dir):
            return optuna.load_study(study_name=document["study_name"], storage=storage)
    except KeyError:
        raise CheckpointError(f"{study_dir}: its storage has no study named {document['study_name']!r}") from None


def _local_sqlite(url: str, study_dir: Path) -> str:
    """A relative ``sqlite:///FILE`` is looked for in the study dir when it is not in the
    working directory; a missing SQLite file is an error rather than a new empty database."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == prefix + ":memory:":
        return url
    file = Path(url.removeprefix(prefix))
    if not file.is_absolute() and not file.is_file() and (study_dir / file).is_file():
        file = (study_dir / file).resolve()
    if not file.is_file():
        raise CheckpointError(f"{study_dir}: the study's database {file} is missing")
    return prefix + str(file)


def visualize_study(path: Path, *, out: Path | None = None, fmt: str = "png") -> Visualization:
    """history, importances, parallel_coordinate and slice plots of the study in ``path``,
    and ``report.html``, into ``out`` (default ``STUDY/plots``)."""
    import optuna

    study_dir = Path(path)
    document = read_study_json(study_dir)
    study = open_study(study_dir)
    if len(study.directions) > 1:
        raise UsageError(f"{study_dir}: a multi-objective study; only single-objective studies are plotted")
    plotter = Plotter(Path(out) if out is not None else study_dir / "plots", fmt)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise CheckpointError(f"{study_dir}: no completed trial yet; nothing to plot")
    metric = str(document.get("metric") or "objective")
    n_params = len({name for t in complete for name in t.params})
    written, notes = [], []
    for name, plot, size, layout, caption in _plans(metric, n_params):
        try:
            figure = _optuna_figure(plot, study, metric, size, layout)
        except (ValueError, RuntimeError) as error:
            notes.append(f"{name}: Optuna could not draw it ({error})")
            continue
        written.append(plotter.save(figure, name, caption))
    page = _study_report(study_dir, document, study, plotter, notes, metric)
    written.append(page.write(plotter.out / "report.html"))
    return plotter.visualization(written, notes)


def _plans(metric: str, n_params: int) -> list[tuple[str, Callable[..., Any], tuple[float, float], str, str]]:
    """The study's plots: (file name, Optuna function, size, layout engine, caption)."""
    vm = _optuna_matplotlib()
    # parallel coordinates' axes defeat the constrained layout
    return [
        (
            "history",
            vm.plot_optimization_history,
            HISTORY_SIZE,
            "constrained",
            f"{metric} of each trial in order, and the best so far",
        ),
        (
            "importances",
            vm.plot_param_importances,
            IMPORTANCES_SIZE,
            "constrained",
            f"how much of {metric}'s variance each parameter explains (fANOVA)",
        ),
        (
            "parallel_coordinate",
            vm.plot_parallel_coordinate,
            PARALLEL_SIZE,
            "tight",
            "each completed trial as a line through its parameter values, coloured by its value",
        ),
        (
            "slice",
            vm.plot_slice,
            (min(SLICE_MAX_WIDTH, SLICE_PANEL[0] * max(1, n_params) + 0.6), SLICE_PANEL[1]),
            "constrained" if n_params > 1 else "tight",  # one panel and its colour bar: constrained divides by 0
            f"{metric} against each parameter, one dot per trial, darker for later trials",
        ),
    ]


def _optuna_matplotlib():
    pyplot()  # Agg before Optuna imports pyplot
    import optuna.visualization.matplotlib as vm

    return vm


def _optuna_figure(plot: Callable[..., Any], study: Any, metric: str, size: tuple[float, float], layout: str):
    """Run one of Optuna's plot functions without its global side effects (it switches
    pyplot to the ggplot style; rc_context restores it) and size its figure."""
    plt = pyplot()
    with matplotlib.rc_context(), warnings.catch_warnings():
        # Optuna's "experimental" notices and matplotlib's complaints about flat axes
        # (one trial, one value) are noise on a user's terminal.
        warnings.simplefilter("ignore")
        before = set(plt.get_fignums())
        try:
            axes = plot(study, target_name=metric)
        except BaseException:
            for number in set(plt.get_fignums()) - before:
                plt.close(number)
            raise
        figure = (axes.flat[0] if isinstance(axes, np.ndarray) else axes).figure
        figure.set_size_inches(inches(size[0]), inches(size[1]))
        figure.set_layout_engine(layout)
        return figure


def _study_report(
    study_dir: Path, document: dict[str, Any], study: Any, plotter: Plotter, notes: list[str], metric: str
) -> report.Report:
    best = _best_trial(study)
    subtitle = (
        f"{document.get('direction', study.direction.name.lower())} {metric} · {len(study.trials)} trials"
        + (f" · best {best.value:.4g} (trial {best.number})" if best is not None else "")
        + f" · {study_dir}"
    )
    page = report.Report(f"Study {document['study_name']}", subtitle)
    best_yaml = study_dir / "best.yaml"
    page.add(
        "Study",
        report.row(
            ("study.json", report.key_values(document)),
            (
                "Best trial (from the storage)",
                report.key_values({"number": best.number, "value": best.value, "params": _decoded(best.params)})
                if best
                else "",
            ),
            ("best.yaml", report.pre(best_yaml.read_text(encoding="utf-8")) if best_yaml.is_file() else ""),
        ),
    )
    page.add("Plots", report.figures(plotter.plots))
    page.add("Not drawn", report.notes(notes))
    page.add(*_trials_table(study_dir, study, metric, "folds" if document.get("folds") else "epochs"))
    return page


def _trials_table(study_dir: Path, study: Any, metric: str, steps: str) -> tuple[str, str]:
    """The heading and table of the trials as trials.csv lists them: values decoded (a list
    choice, not Optuna's ``json:`` text), each failed trial's reason; the best ones first
    beyond ``TRIALS_SHOWN``."""
    rows = trial_rows(study, study_dir)
    shown = rows if len(rows) <= TRIALS_SHOWN else _best_rows(rows, study)[:TRIALS_SHOWN]
    names = sorted({name for row in rows for name in row.params})
    table = report.table(
        ["trial", "state", metric, *names, steps, "seconds", "error"],
        [
            [row.number, row.state.lower(), row.value if row.state in ("COMPLETE", "PRUNED") else None]
            + [*(row.params.get(name) for name in names), row.epochs, row.duration_s, row.error]
            for row in shown
        ],
    )
    return ("Trials" if len(shown) == len(rows) else f"Best {len(shown)} of {len(rows)} trials"), table


def _best_rows(rows: list[TrialRow], study: Any) -> list[TrialRow]:
    import optuna

    sign = -1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1
    return sorted(
        (r for r in rows if r.state == "COMPLETE" and r.value is not None), key=lambda r: sign * (r.value or 0)
    )


def _decoded(params: dict[str, Any]) -> dict[str, Any]:
    return {key: decode_value(value) for key, value in params.items()}


def _best_trial(study: Any):
    try:
        return study.best_trial
    except ValueError:  # no completed trial
        return None
