"""Tuning progress on stderr: a live table of trials on a terminal, one line per event otherwise."""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from typing import Any

from rich.live import Live
from rich.table import Table

from dltool._text import counted
from dltool.commands._output import say, stderr, stderr_observer
from dltool.tuning import StudyStart, TrialRow, TuneObserver

SHOWN_ROWS = 15  # the running trials, the best, and the latest others


def start_lines(start: StudyStart) -> list[str]:
    workers = f", {start.workers} workers" if start.workers > 1 else ""
    done = f", {start.counted} done before" if start.counted else ""
    folds = f" as the mean of {start.folds} folds" if start.folds else ""
    return [
        f"tuning {start.study_dir}: study {start.study_name!r}, {start.n_trials} trials{done}, "
        f"{start.metric} ({start.direction}){folds}, sampler {start.sampler}, pruner {start.pruner}{workers}",
        f"dashboard: {start.dashboard}",
    ]


def params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{key}={_value(value)}" for key, value in params.items())


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _number(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4f}"


class PlainTuneProgress(TuneObserver):
    """For logs: a line when a trial starts and when it ends."""

    def __init__(self) -> None:
        self.seen: dict[int, str] | None = None  # state last shown, by trial number
        self.metric = "value"
        self.step = "epoch"  # what a trial counts: epochs, or folds

    def on_start(self, start: StudyStart) -> None:
        self.metric = start.metric
        self.step = "fold" if start.folds else "epoch"
        for line in start_lines(start):
            say(line)

    def on_trials(self, rows: list[TrialRow]) -> None:
        if self.seen is None:  # trials of earlier sessions: the start line counted them
            self.seen = {r.number: r.state for r in rows}
        for row in rows:
            if (
                self.seen.get(row.number) == row.state
                or row.state == "WAITING"
                or (row.state == "RUNNING" and row.run_dir is None)
            ):
                continue  # (a trial is shown once all its values are chosen: its run dir is set after them)
            self.seen[row.number] = row.state
            if row.state == "RUNNING":
                say(f"trial {row.number} started: {params_text(row.params)}")
            else:
                say(self.end_line(row))

    def end_line(self, row: TrialRow) -> str:
        line = f"trial {row.number} {row.state}"
        if row.state in ("COMPLETE", "PRUNED"):
            line += f"  {self.metric} {_number(row.value)}  after {counted(row.epochs, self.step)}"
        if row.fold_values:
            line += f" ({' '.join(map(_number, row.fold_values))})"
        if row.duration_s is not None:
            line += f"  {row.duration_s:.1f}s"
        if row.error:
            line += f"  {row.error}"
        return line

    def on_message(self, text: str) -> None:
        say(text)


class RichTuneProgress(PlainTuneProgress):
    """For a terminal: the trials as a live table, messages printed above it."""

    def __init__(self) -> None:
        super().__init__()
        self.live = Live(console=stderr, transient=False, auto_refresh=False)
        self.maximize = True
        self.n_trials = 0

    def on_start(self, start: StudyStart) -> None:
        super().on_start(start)
        self.maximize = start.direction == "maximize"
        self.n_trials = start.n_trials

    def on_trials(self, rows: list[TrialRow]) -> None:
        self.live.update(self.table(rows), refresh=True)

    def on_message(self, text: str) -> None:
        say(text)  # the live table's console: printed above the table

    def table(self, rows: list[TrialRow]) -> Table:
        complete = [r for r in rows if r.state == "COMPLETE" and r.value is not None]
        best = (max if self.maximize else min)(complete, key=lambda r: r.value or 0.0) if complete else None
        done = sum(r.counted for r in rows)
        title = f"{done}/{self.n_trials} trials done"
        if best is not None:
            title += f"; best {self.metric} {_number(best.value)} (trial {best.number})"
        keys = list(dict.fromkeys(k for r in rows for k in r.params))
        table = Table(
            "#", "state", *keys, self.metric, f"{self.step}s", "time", title=title, title_justify="left", box=None
        )
        for row in _shown(rows, best):
            style = "bold" if row is best else ("dim" if row.state in ("PRUNED", "FAIL") else None)
            table.add_row(
                str(row.number),
                row.state,
                *[_value(row.params[k]) if k in row.params else "" for k in keys],
                _number(row.value),
                str(row.epochs),
                "" if row.duration_s is None else f"{row.duration_s:.1f}s",
                style=style,
            )
        return table


def _shown(rows: list[TrialRow], best: TrialRow | None) -> list[TrialRow]:
    if len(rows) <= SHOWN_ROWS:
        return rows
    keep = {r.number for r in rows if r.state == "RUNNING"} | ({best.number} if best else set())
    keep |= {r.number for r in rows[-(SHOWN_ROWS - len(keep)) :]}
    return [r for r in rows if r.number in keep]


def tune_progress(quiet: bool) -> AbstractContextManager[TuneObserver]:
    """The observer that suits stderr: nothing, plain lines, or a live table."""
    return stderr_observer(quiet, TuneObserver, PlainTuneProgress, RichTuneProgress, lambda o: o.live)  # type: ignore[attr-defined]  # live() makes a RichTuneProgress
